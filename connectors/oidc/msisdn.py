"""Vietnamese mobile numbers (MSISDN) in the two shapes an operator sign-in needs.

`84912345678` (country code + national number, the Mobile Connect `login_hint` shape) and
`+84912345678` (E.164 with the plus, the OpenID `phone_number` claim shape, OIDC Core §5.1).
"""

from __future__ import annotations

import re

from connectors.telecom.phone import InvalidPhoneNumber
from connectors.telecom.phone import normalize_msisdn as _to_e164

COUNTRY_CODE = "84"
_SEPARATORS = re.compile(r"[\s.\-()]")


def normalize_msisdn(raw: str | None) -> str | None:
    """`0912 345 678`, `+84912345678`, `84912345678`, `MSISDN:84912345678` → `84912345678`.

    The one Vietnamese-number normalisation (connectors/telecom/phone.py) with the Mobile
    Connect `MSISDN:` prefix allowed and the plus left off. Anything that is not a Vietnamese
    mobile number gives None.
    """
    if not isinstance(raw, str) or not raw:
        return None
    value = raw.strip()
    if value[:7].upper() == "MSISDN:":
        value = value[7:]
    try:
        return _to_e164(value)[1:]
    except InvalidPhoneNumber:
        return None


def to_e164(raw: str | None) -> str | None:
    """The same number as E.164 with the plus: `+84912345678`, or None."""
    msisdn = normalize_msisdn(raw)
    return "+" + msisdn if msisdn else None


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def phone_to_e164(value: object) -> str | None:
    """A `phone_number` claim as E.164: Vietnamese numbers in any usual shape, other countries
    only when already E.164. None when it isn't a phone number."""
    if not isinstance(value, str):
        return None
    compact = _SEPARATORS.sub("", value.strip())
    if compact.startswith("+") and not compact.startswith("+" + COUNTRY_CODE):
        return compact if _E164.fullmatch(compact) else None
    return to_e164(compact)
