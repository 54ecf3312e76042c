"""A citizen as the population registry holds it, and how the registry compares names."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

STATUSES = ("active", "deceased", "locked")


@dataclass(frozen=True)
class Citizen:
    pin: str
    family_name: str
    middle_name: str
    given_name: str
    date_of_birth: str  # ISO 8601, YYYY-MM-DD
    sex: str  # male | female
    residence: str  # place of residence (nơi thường trú), formatted
    residence_province: str
    phone: str | None  # mobile on record, as the registry holds it (0xxxxxxxxx or +84...)
    status: str  # active | deceased | locked

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.family_name, self.middle_name, self.given_name) if part)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["full_name"] = self.full_name
        return record


def name_key(name: str) -> str:
    """Names match case- and whitespace-insensitively after NFC; diacritics are significant
    (`Nguyễn Văn An` ≠ `Nguyen Van An`: they are different names in Vietnamese)."""
    folded = unicodedata.normalize("NFC", name or "").casefold()
    return unicodedata.normalize("NFC", " ".join(folded.split()))
