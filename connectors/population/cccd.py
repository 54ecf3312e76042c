"""The structure of the 12-digit personal identification number (số định danh cá nhân, printed
on the chip-based citizen identity card, CCCD), per Decree 137/2015/ND-CP and Circular
07/2016/TT-BCA:

    PPP  G  YY  NNNNNN
    │    │  │   └─ 6-digit serial
    │    │  └───── last two digits of the birth year
    │    └──────── century and sex: 0/1 male/female born 1900–1999, 2/3 born 2000–2099,
    │              (4/5 2100s, 6/7 2200s, 8/9 2300s; not issued yet)
    └───────────── province (or "centrally run city") where the birth was registered
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# The 63 province codes of Circular 07/2016/TT-BCA (the provinces before the 2025 merger,
# which is what every card issued so far carries).
PROVINCES: dict[str, str] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu",
    "079": "TP Hồ Chí Minh",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

_PIN = re.compile(r"[0-9]{12}", re.ASCII)
SEXES = ("male", "female")


class InvalidPin(ValueError):
    """Not a well-formed personal identification number."""


@dataclass(frozen=True)
class PinParts:
    province_code: str
    century_sex_digit: int
    birth_year: int
    sex: str
    serial: str


def century_sex_digit(birth_year: int, sex: str) -> int:
    """Digit 4 of the PIN for someone born in `birth_year` (1900–2099) of `sex`."""
    if not 1900 <= birth_year <= 2099 or sex not in SEXES:
        raise ValueError("birth year must be 1900–2099 and sex male or female")
    return (0 if birth_year < 2000 else 2) + (1 if sex == "female" else 0)


def make_pin(province_code: str, birth_year: int, sex: str, serial: int) -> str:
    if province_code not in PROVINCES or not 0 <= serial <= 999_999:
        raise ValueError("unknown province code or serial out of range")
    return f"{province_code}{century_sex_digit(birth_year, sex)}{birth_year % 100:02d}{serial:06d}"


def ascii_digits(text: str) -> str:
    """Every Unicode decimal digit (full-width, Arabic-Indic, ...) as its ASCII digit."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def normalize_pin(raw: str) -> str:
    """The one canonical spelling, for the lookup and the throttle key alike: NFKC, every Unicode
    whitespace dropped (spaces, tabs, U+3000), any decimal digit as ASCII; the result is exactly
    12 ASCII digits or InvalidPin."""
    if not isinstance(raw, str):
        raise InvalidPin("a personal identification number has 12 digits")
    pin = ascii_digits("".join(unicodedata.normalize("NFKC", raw).split()))
    if not _PIN.fullmatch(pin):
        raise InvalidPin("a personal identification number has 12 digits")
    return pin


def parse_pin(pin: str) -> PinParts:
    """Split a PIN issued so far (province known, century digit 0–3)."""
    pin = normalize_pin(pin)
    province, digit = pin[:3], int(pin[3])
    if province not in PROVINCES or digit > 3:
        raise InvalidPin("unknown province code or century digit")
    century = 1900 if digit < 2 else 2000
    return PinParts(
        province_code=province,
        century_sex_digit=digit,
        birth_year=century + int(pin[4:6]),
        sex=SEXES[digit % 2],
        serial=pin[6:],
    )
