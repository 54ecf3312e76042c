"""What the hand-written integration docs (docs/*.md) state of the code, checked where cheap: the
quickstart's client file is metadata NIXA accepts, the discovery fields, settings, CLI commands,
reasons and links they name exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _text(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


def test_the_quickstart_client_file_is_accepted_as_it_is():
    from idp.oidc.metadata import validate_metadata

    block = re.search(r"```json\n(\[.*?\])\n```", _text("quickstart.md"), re.S)
    assert block
    clients = json.loads(block.group(1))
    md = validate_metadata(clients[0])
    assert md["nixa_refuse_unknown_scopes"] is True and md["redirect_uris"][0].startswith("http://127.0.0.1")


def test_the_discovery_fields_the_quickstart_names_exist(nixa):
    from idp.oidc.endpoints import discovery_document

    document = discovery_document(nixa)
    named = set(re.findall(r"`([a-z_]+_(?:endpoint|supported)|jwks_uri)`", _text("quickstart.md")))
    assert named and named <= set(document), named - set(document)
    for path in re.findall(r"\(`(/[a-z/]+)`\)", _text("quickstart.md")):
        assert any(str(v).endswith(path) for v in document.values()), path


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_setting_command_and_link_a_doc_names_exists(doc):
    from typer.main import get_command

    from admin.cli import app
    from idp.settings import Settings

    text = doc.read_text(encoding="utf-8")
    from idp.settings import SECRET_SETTINGS

    settings = {f"NIXA_{name.upper()}" for name in Settings.model_fields}
    settings |= {f"NIXA_{name.upper()}_FILE" for name in SECRET_SETTINGS}
    assert set(re.findall(r"NIXA_[A-Z_]+[A-Z]", text)) <= settings
    cli = get_command(app)
    for words in re.findall(r"`nixa ([a-z-]+(?: [a-z-]+)?)", text):
        group = cli.commands.get(words.split()[0])
        assert group is not None, words
        if " " in words and hasattr(group, "commands"):
            assert words.split()[1] in group.commands, words
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (doc.parent / target).exists(), target


def test_the_reasons_the_docs_name_are_in_the_catalogue():
    from idp.oidc.errors import CATALOGUE

    for doc in DOCS:
        if doc.name == "errors.md":
            continue
        for reason in re.findall(r"\(`([a-z_]+)`\)", doc.read_text(encoding="utf-8")):
            if reason.endswith(("_reused", "_unsupported", "_unreachable", "_invalid", "_mismatch", "_registered", "_allowed")):
                assert reason in CATALOGUE, (doc.name, reason)


def test_the_readme_points_to_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("quickstart", "claims", "errors", "levels", "key-rotation", "logout", "go-live"):
        assert f"docs/{doc}.md" in readme, doc


def test_the_quickstart_commands_register_the_client_in_a_fresh_deployment(tmp_path, master_key):  # noqa: ANN001
    """The quickstart's steps as written: the master key from a file, `nixa clients import` of its
    JSON, `nixa clients list`; without the key the demo's own is used (and said), and another
    deployment's folder refuses plainly."""
    from typer.testing import CliRunner

    from admin.cli import app

    text = _text("quickstart.md")
    assert "export NIXA_MASTER_KEY_FILE=var/master.key" in text
    var = tmp_path / "var"
    (tmp_path / "var").mkdir()
    (var / "master.key").write_text(master_key)
    (tmp_path / "my-agency-dev.json").write_text(re.search(r"```json\n(\[.*?\])\n```", text, re.S).group(1), encoding="utf-8")
    env = {"NIXA_VAR_DIR": str(var), "NIXA_DATABASE_URL": "", "NIXA_REDIS_URL": "", "NIXA_MASTER_KEY": ""}
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    # Without the export, on the demo's folder: the demo's throwaway key, said out loud.
    listed = runner.invoke(app, ["clients", "list"], env=env)
    assert listed.exit_code == 0 and "using the demo's throwaway master key" in listed.output
    # Another deployment's folder (no demo key in it): a plain refusal.
    other = tmp_path / "other"
    other.mkdir()
    assert runner.invoke(app, ["migrate"], env={**env, "NIXA_VAR_DIR": str(other)}).exit_code == 0
    refused = runner.invoke(app, ["clients", "import", str(tmp_path / "my-agency-dev.json")], env={**env, "NIXA_VAR_DIR": str(other)})
    assert refused.exit_code == 2 and "NIXA_MASTER_KEY" in refused.output
    env["NIXA_MASTER_KEY_FILE"] = str(var / "master.key")
    imported = runner.invoke(app, ["clients", "import", str(tmp_path / "my-agency-dev.json")], env=env)
    assert imported.exit_code == 0 and "my-agency-dev" in imported.output and "client_secret=" in imported.output
    listed = runner.invoke(app, ["clients", "list"], env=env)
    assert listed.exit_code == 0 and "my-agency-dev" in listed.output
