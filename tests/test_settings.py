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
