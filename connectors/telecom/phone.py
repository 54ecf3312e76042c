"""Vietnamese mobile numbers: one canonical form (E.164, `+84` and 9 digits) and a masked form.

People type a number in any of the forms in use (`0912 345 678`, `+84912345678`,
`84912345678`, `0084912345678`); the operator API, the store keys and the `phone_number`
claim all use E.164 (OpenID Connect Core §5.1 recommends it for `phone_number`).
"""

from __future__ import annotations

import re

# Mobile national significant numbers are 9 digits and start with 3, 5, 7, 8 or 9
# (since the 2018 renumbering: 03x Viettel, 05x Vietnamobile/Gmobile, 07x MobiFone,
# 08x Vinaphone/Viettel/MobiFone, 09x all operators).
_MOBILE_NSN = re.compile(r"[35789]\d{8}")
_SEPARATORS = re.compile(r"[\s.\-()]")


class InvalidPhoneNumber(ValueError):
    """Not a Vietnamese mobile number."""


def normalize_msisdn(raw: str) -> str:
    """Return the E.164 form of a Vietnamese mobile number, or raise InvalidPhoneNumber."""
    digits = _SEPARATORS.sub("", raw or "")
    if digits.startswith("+84"):
        nsn = digits[3:]
    elif digits.startswith("0084"):
        nsn = digits[4:]
    elif digits.startswith("84") and len(digits) == 11:
        nsn = digits[2:]
    elif digits.startswith("0") and len(digits) == 10:
        nsn = digits[1:]
    else:
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    if not _MOBILE_NSN.fullmatch(nsn):
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    return "+84" + nsn


def national_format(msisdn: str) -> str:
    """`+84912345678` → `0912345678`."""
    return "0" + normalize_msisdn(msisdn)[3:]


def mask_msisdn(msisdn: str) -> str:
    """Show enough for the person to recognise their number, no more: `091****678`."""
    national = national_format(msisdn)
    return f"{national[:3]}****{national[-3:]}"
