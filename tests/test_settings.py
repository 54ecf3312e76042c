"""Secret settings from files (NIXA_<NAME>_FILE), as Docker and Kubernetes secrets are mounted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from idp.settings import SECRET_SETTINGS, Settings


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_secret_setting_is_read_from_its_file(name, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(f"NIXA_{name.upper()}", raising=False)
    secret = tmp_path / name
    secret.write_text("s3cret-value\n")
    monkeypatch.setenv(f"NIXA_{name.upper()}_FILE", str(secret))
    assert getattr(Settings(), name) == "s3cret-value"  # the file's trailing newline is dropped


def test_value_and_file_together_are_refused(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    secret = tmp_path / "key"
    secret.write_text("from-file")
    monkeypatch.setenv("NIXA_MASTER_KEY", "from-env")
    monkeypatch.setenv("NIXA_MASTER_KEY_FILE", str(secret))
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_an_unreadable_file_is_a_clear_refusal(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("NIXA_MASTER_KEY", raising=False)
    monkeypatch.setenv("NIXA_MASTER_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="cannot read"):
        Settings()


def test_without_files_the_environment_is_used(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("NIXA_REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.delenv("NIXA_REDIS_URL_FILE", raising=False)
    assert Settings().redis_url == "redis://127.0.0.1:6390/2"


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["migrate"], ["keys", "list"]])
def test_a_wrong_setting_stops_a_command_with_one_line_not_a_traceback(command, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from admin.cli import app

    monkeypatch.delenv("NIXA_MASTER_KEY", raising=False)
    env = {"NIXA_MASTER_KEY_FILE": str(tmp_path / "missing"), "NIXA_VAR_DIR": str(tmp_path), "NIXA_MAX_BODY_BYTES": "lots"}
    result = CliRunner().invoke(app, command, env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert "nixa: configuration: NIXA_MASTER_KEY_FILE: cannot read" in result.output
    assert "Traceback" not in result.output and "ValidationError" not in result.output
