"""UI text: Vietnamese first, English second. One JSON file per language, same keys."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("vi", "en")
DEFAULT = "vi"


@lru_cache(maxsize=None)
def messages(lang: str) -> dict[str, str]:
    return json.loads((Path(__file__).parent / f"{lang}.json").read_text(encoding="utf-8"))


def pick_language(ui_locales: str | None, accept_language: str | None, explicit: str | None = None) -> str:
    """ui_locales (OIDC Core §3.1.2.1) wins, then an explicit choice, then Accept-Language."""
    for candidate in [explicit or "", *(ui_locales or "").split()]:
        base = candidate.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    if accept_language:
        ranked = []
        for part in accept_language.split(",")[:20]:
            tag, _, q = part.strip().partition(";q=")
            try:
                weight = float(q) if q else 1.0
            except ValueError:
                weight = 0.0
            ranked.append((weight, tag.split("-")[0].lower()))
        for _, base in sorted(ranked, reverse=True):
            if base in LANGUAGES:
                return base
    return DEFAULT


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._msgs = messages(self.lang)
        self._fallback = messages(DEFAULT)

    def __call__(self, key: str, **kw: object) -> str:
        text = self._msgs.get(key) or self._fallback.get(key) or key
        return text.format(**kw) if kw else text
