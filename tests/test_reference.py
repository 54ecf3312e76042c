"""docs/claims.md and docs/errors.md are generated from the code (idp/reference.py) and must be
in step with it; every catalogue entry is one the code really raises; the claims the code
releases match the formats the reference promises."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from idp import reference
from idp.identity.claims import CLAIMS, SCOPE_CLAIMS, release
from idp.oidc.errors import CATALOGUE, PAGE, ascii_text

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_docs_are_in_step_with_the_code():
    assert reference.stale(ROOT) == [], "run `nixa docs generate` and commit docs/"


def test_a_doc_out_of_step_is_caught(tmp_path):
    reference.generate(tmp_path)
    assert reference.stale(tmp_path) == []
    errors = tmp_path / "docs" / "errors.md"
    errors.write_text(errors.read_text(encoding="utf-8").replace("code_expired", "code_old"), encoding="utf-8")
    assert reference.stale(tmp_path) == ["docs/errors.md"]
    from admin.cli import app

    result = CliRunner().invoke(app, ["docs", "generate", "--check", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "docs/errors.md" in result.output
    assert CliRunner().invoke(app, ["docs", "generate", "--root", str(tmp_path)]).exit_code == 0
    assert reference.stale(tmp_path) == []


def _string_constants(package: Path, skip: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        if path == skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_catalogue_entry_is_raised_somewhere():
    """Our entries: the reason (or a page's i18n key, or `error_` + a PageError code) is named by
    code outside the catalogue. Authlib's: its text is in the library's source."""
    import authlib

    used = _string_constants(ROOT / "idp", ROOT / "idp" / "oidc" / "errors.py")
    library = "\n".join(p.read_text(encoding="utf-8") for p in Path(authlib.__file__).parent.joinpath("oauth2").rglob("*.py"))
    unused = []
    for entry in CATALOGUE.values():
        if entry.origin == "authlib":
            # (up to the first field, and within one source line: Authlib splits long messages)
            literal = re.split(r"\{[a-z_]+\}", entry.description)[0][:40] or f'error = "{entry.error}"'
            ok = literal in library
        elif entry.error == PAGE:
            ok = entry.reason in used or entry.description in used
        else:
            ok = entry.reason in used
        if not ok:
            unused.append(entry.reason)
    assert unused == []


def test_descriptions_are_ascii_and_every_entry_says_cause_and_fix():
    for entry in CATALOGUE.values():
        assert entry.cause and entry.fix, entry.reason
        if entry.error != PAGE:
            assert ascii_text(entry.description) == entry.description, entry.reason
    assert ascii_text('naïve "quote" \\') == "na?ve ?quote? ?"
    assert CATALOGUE["scope_not_allowed"].text(scopes="hồ_sơ") == "Scope(s) not allowed for this client: h?_s?"


def test_every_page_key_exists_in_both_languages():
    import json

    for lang in ("vi", "en"):
        texts = json.loads((ROOT / "idp" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
        missing = [e.description for e in CATALOGUE.values() if e.error == PAGE and e.description not in texts]
        assert missing == [], lang


# ---- claims ---------------------------------------------------------------------------------------


def test_the_documented_examples_are_released_as_documented():
    released = reference.example_userinfo(frozenset(SCOPE_CLAIMS) | {"openid"})
    by_name = {c.name: c for c in CLAIMS}
    types = {"string": str, "boolean": bool, "object": dict, "array": list, "number": (int, float)}
    for name, value in released.items():
        claim = by_name[name]
        assert isinstance(value, types[claim.type]), name
        if claim.pattern:
            assert re.match(claim.pattern, value), (name, value)
    assert "national_id" not in released  # an unauthorised client never gets it
    assert release({}, {"profile"}, national_id_allowed=True) == {}


def test_a_registry_person_is_released_in_the_documented_formats():
    """The registry's real record of the demo citizen, through the same release: every claim is
    documented under its scope, with its type and pattern."""
    from connectors.population.connector import registry_attributes
    from connectors.population.demo_data import DEMO_CITIZEN

    attrs = registry_attributes(DEMO_CITIZEN, 1.0)
    by_name = {c.name: c for c in CLAIMS}
    types = {"string": str, "boolean": bool, "object": dict, "array": list}
    for scope in SCOPE_CLAIMS:
        for name, value in release(attrs, {scope}, national_id_allowed=True).items():
            claim = by_name[name]
            assert claim.scope == scope and isinstance(value, types[claim.type]), name
            if claim.pattern:
                assert re.match(claim.pattern, value), (name, value)
    address = release(attrs, {"address"}, national_id_allowed=False)["address"]
    assert set(address) == set(by_name["address"].example) and address["country"] == "VN"


@pytest.mark.parametrize("source, verified", [("population", True), ("local", False)])
def test_verified_flags_follow_the_source(source, verified):
    from connectors.base import VerifiedAttribute

    out = release({"phone_number": VerifiedAttribute("phone_number", "+84912345678", source, 1.0)}, {"phone"}, national_id_allowed=False)
    assert out == {"phone_number": "+84912345678", "phone_number_verified": verified}


def test_every_reason_the_code_refuses_with_is_in_the_catalogue():
    """A mistyped reason would be a KeyError, a 500, on the very path that should say what was wrong."""
    callers = {"refuse", "AuthorizationError", "BadRequest", "InvalidToken", "_bearer_error", "PageError", "note", "deny"}
    named = []
    for path in (ROOT / "idp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            args = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if func in callers and args:
                named.append((path.name, args[-1].value if func == "deny" else args[0].value))
    assert len(named) > 60
    assert [(f, r) for f, r in named if r not in CATALOGUE] == []
