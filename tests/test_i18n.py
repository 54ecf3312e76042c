"""Every page text exists in Vietnamese and in English."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "idp"


def _load(lang: str) -> dict[str, str]:
    return json.loads((ROOT / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def test_both_languages_have_the_same_non_empty_texts() -> None:
    vi, en = _load("vi"), _load("en")
    assert set(vi) == set(en), set(vi) ^ set(en)
    assert all(v.strip() for v in vi.values()) and all(v.strip() for v in en.values())
    assert vi["login_title"] != en["login_title"]  # really translated


def test_every_key_the_code_and_templates_use_exists() -> None:
    vi = _load("vi")
    used: set[str] = set()
    for path in list((ROOT / "templates").glob("*.html")) + list(ROOT.rglob("*.py")) + list((ROOT.parent / "admin").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z0-9_]+)['"]""", text))
        used |= set(re.findall(r"""message\([^)]*?['"]((?:error|logout|logged)_[a-z_]+)['"]""", text))
    missing = sorted(k for k in used if k not in vi and not k.endswith("_"))  # prefixes: level_ ~ n, scope_ ~ s
    assert not missing, missing


def test_every_level_and_scope_has_a_text() -> None:
    from idp.app import STANDARD_SCOPES

    vi = _load("vi")
    assert all(f"level_{n}" in vi for n in (1, 2, 3))
    assert all(f"scope_{s}" in vi for s in STANDARD_SCOPES)
