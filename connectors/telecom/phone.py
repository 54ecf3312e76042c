"""Vietnamese mobile numbers: one canonical form (E.164, `+84` and 9 digits) and a masked form.

People type a number in any of the forms in use (`0912 345 678`, `+84912345678`,
`84912345678`, `0084912345678`), sometimes with full-width or other non-ASCII digits; the
operator API, the store keys, the throttle keys and the `phone_number` claim all use E.164
(OpenID Connect Core §5.1 recommends it for `phone_number`). Which ranges are mobile comes from
libphonenumber's metadata (`phonenumbers`), not from a hand-kept prefix list.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

REGION = "VN"
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# What may be left once digits are ASCII and whitespace is gone: digits, one leading plus and the
# usual separators. Letters are refused here: libphonenumber would read them as a keypad
# (`0912abc678` as 0912222678) and would take `ext. 12` as an extension.
_SHAPE = re.compile(r"\+?[0-9.\-()/]{1,24}", re.ASCII)
_SEPARATORS = re.compile(r"[.\-()/]")


class InvalidPhoneNumber(ValueError):
    """Not a Vietnamese mobile number."""


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def normalize_msisdn(raw: str) -> str:
    """Return the E.164 form of a Vietnamese mobile number, or raise InvalidPhoneNumber."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    compact = _ascii_digits("".join(unicodedata.normalize("NFKC", raw).split()))
    if not _SHAPE.fullmatch(compact):
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    digits = _SEPARATORS.sub("", compact)
    try:
        number = phonenumbers.parse(digits, REGION)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a Vietnamese mobile number") from None
    if (
        number.extension
        or not phonenumbers.is_valid_number_for_region(number, REGION)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not re.fullmatch(r"\+84[0-9]{9}", e164, re.ASCII):  # every VN mobile NSN has 9 digits
        raise InvalidPhoneNumber("not a Vietnamese mobile number")
    return e164


def national_format(msisdn: str) -> str:
    """`+84912345678` → `0912345678`."""
    return "0" + normalize_msisdn(msisdn)[3:]


def mask_msisdn(msisdn: str) -> str:
    """Show enough for the person to recognise their number, no more: `091****678`."""
    national = national_format(msisdn)
    return f"{national[:3]}****{national[-3:]}"
