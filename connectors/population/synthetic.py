"""Synthetic but plausible citizens: Vietnamese names, PINs with a consistent structure,
birth dates, residences and mobile numbers. Deterministic for a given `random.Random`.

Every value is made up; no real person's data is involved.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random

from connectors.population.cccd import PROVINCES, century_sex_digit
from connectors.population.demo_data import DEMO_PINS

# Birth dates are drawn up to this year, not "today", so that a seed gives the same file
# whenever it is generated.
REFERENCE_YEAR = 2024
FIRST_BIRTH_YEAR = 1925

# Approximate shares of the most common family names (Nguyễn ≈ 38 %).
FAMILY_NAMES = {
    "Nguyễn": 38, "Trần": 11, "Lê": 9.5, "Phạm": 7, "Hoàng": 4, "Huỳnh": 3.5, "Phan": 4.5,
    "Vũ": 2.5, "Võ": 2.5, "Đặng": 2.1, "Bùi": 2, "Đỗ": 1.4, "Hồ": 1.3, "Ngô": 1.3, "Dương": 1,
    "Lý": 0.5, "Đinh": 0.9, "Trương": 0.8, "Lâm": 0.5, "Mai": 0.5, "Đào": 0.5, "Đoàn": 0.5,
    "Cao": 0.4, "Hà": 0.4, "Trịnh": 0.4, "Lương": 0.3, "Tạ": 0.3, "Lưu": 0.3, "Châu": 0.2,
    "Tô": 0.2, "Vương": 0.2, "Thái": 0.2, "Quách": 0.1, "Kiều": 0.1, "La": 0.1,
}
MIDDLE_NAMES = {
    "male": {
        "Văn": 30, "Minh": 10, "Đức": 8, "Hữu": 6, "Quốc": 6, "Thành": 5, "Công": 5, "Đình": 5,
        "Quang": 5, "Gia": 5, "Xuân": 4, "Hoàng": 4, "Anh": 3, "Ngọc": 3, "Trọng": 3, "Thanh": 3,
        "Duy": 3, "Bảo": 3, "Tuấn": 2, "Tiến": 2,
    },
    "female": {
        "Thị": 35, "Ngọc": 8, "Thu": 6, "Thanh": 6, "Minh": 5, "Phương": 4, "Bảo": 4, "Khánh": 4,
        "Hồng": 4, "Kim": 4, "Thùy": 4, "Mai": 3, "Gia": 3, "Hoài": 2, "Diệu": 2, "Quỳnh": 2,
        "Thảo": 2, "Tuyết": 2, "Lan": 2, "Ánh": 2,
    },
}
# "Văn" and "Thị" are much rarer among people born since 2000.
TRADITIONAL_MIDDLE = {"Văn", "Thị"}
GIVEN_NAMES = {
    "male": (
        "An", "Anh", "Bảo", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Đức", "Hải", "Hiếu", "Hòa",
        "Hoàng", "Hùng", "Hưng", "Huy", "Khang", "Khánh", "Khoa", "Kiên", "Lâm", "Long", "Lộc",
        "Mạnh", "Minh", "Nam", "Nghĩa", "Nhân", "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài",
        "Tâm", "Thắng", "Thành", "Thịnh", "Toàn", "Trí", "Trung", "Tuấn", "Tùng", "Việt", "Vinh",
        "Vũ", "Hiển", "Đông", "Hậu", "Tú",
    ),
    "female": (
        "Anh", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Hương",
        "Huyền", "Lan", "Liên", "Linh", "Loan", "Ly", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhi",
        "Nhung", "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo", "Thơ", "Thư", "Thủy", "Trang", "Trinh",
        "Tuyết", "Uyên", "Vân", "Vy", "Xuân", "Yến", "Diệp", "Khuê", "Hân", "An", "Hạ",
    ),
}
# Population shares by province of birth registration, roughly; unlisted provinces weigh 1.2.
PROVINCE_WEIGHTS = {
    "001": 8.5, "079": 9.4, "038": 3.7, "040": 3.4, "075": 3.2, "074": 2.7, "031": 2.1,
    "089": 1.9, "030": 1.9, "066": 1.9, "034": 1.9, "024": 1.9, "036": 1.8, "091": 1.8,
    "082": 1.8, "080": 1.7, "064": 1.6, "052": 1.5, "027": 1.4, "022": 1.3, "092": 1.3,
    "048": 1.2, "062": 0.6, "012": 0.5, "006": 0.3, "004": 0.55, "011": 0.6, "002": 0.9,
    "067": 0.65, "058": 0.6, "045": 0.65, "093": 0.73, "095": 0.9,
}
MIGRATION_TARGETS = {"079": 45, "001": 35, "074": 6, "075": 5, "048": 5, "031": 4}
CITIES = {"001", "079", "048", "031", "092"}
STREETS = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Nguyễn Trãi", "Lê Duẩn", "Điện Biên Phủ", "Hùng Vương", "Phan Chu Trinh", "Nguyễn Du",
    "Bà Triệu", "Trần Phú", "Võ Thị Sáu", "Nguyễn Thị Minh Khai", "Hoàng Diệu", "Lạc Long Quân",
    "Phan Đình Phùng", "Nguyễn Văn Cừ",
)
LOCALITIES = (
    "Tân Phong", "An Hòa", "Hòa Bình", "Quang Trung", "Trần Phú", "Minh Khai", "Đông Hải",
    "Tân An", "Phú Lợi", "Thanh Bình", "Hưng Phú", "Thắng Lợi", "Tân Tiến", "Hợp Thành",
    "Yên Thịnh", "Đồng Tâm", "Hiệp Hòa", "Long Thạnh", "Bình Minh", "Thống Nhất",
)
# Mobile prefixes after the 2018 renumbering (Viettel, Vinaphone, MobiFone, Vietnamobile, Gmobile).
# Only the ranges libphonenumber's metadata knows as mobile (what normalize_msisdn accepts):
# of 089 only 0896–0899 are, and 0992 is not, hence the longer prefixes there.
MOBILE_PREFIXES = (
    "032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098",
    "081", "082", "083", "084", "085", "088", "091", "094",
    "070", "076", "077", "078", "079", "0898", "090", "093",
    "056", "058", "092", "0995", "059",
)
SERIAL_STRIDE = 7919  # prime, coprime with 10^6: k ↦ (offset + k·stride) mod 10^6 is a permutation


def _birth_year_weight(year: int) -> float:
    # A rough Vietnamese age pyramid: few before 1945, bulge 1975–2004.
    if year < 1945:
        return 1
    if year < 1960:
        return 3
    if year < 1975:
        return 6
    if year < 2005:
        return 9
    return 8


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class CitizenFactory:
    """Makes rows for the `citizens` table (see registry_db.COLUMNS), PINs unique by construction."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._provinces = list(PROVINCES)
        self._province_cum = _cumulative([PROVINCE_WEIGHTS.get(code, 1.2) for code in self._provinces])
        self._years = list(range(FIRST_BIRTH_YEAR, REFERENCE_YEAR + 1))
        self._year_cum = _cumulative([_birth_year_weight(y) for y in self._years])
        self._families = list(FAMILY_NAMES)
        self._family_cum = _cumulative(list(FAMILY_NAMES.values()))
        self._middles: dict[tuple[str, bool], tuple[list[str], list[float]]] = {}
        for sex, table in MIDDLE_NAMES.items():
            for modern in (False, True):
                names = list(table)
                weights = [w * (0.25 if modern and n in TRADITIONAL_MIDDLE else 1) for n, w in table.items()]
                self._middles[(sex, modern)] = (names, _cumulative(weights))
        self._migration = list(MIGRATION_TARGETS)
        self._migration_cum = _cumulative(list(MIGRATION_TARGETS.values()))
        self._serials: dict[str, list[int]] = {}  # PIN prefix → [offset, next k]

    def _pick(self, population: list, cum: list[float]):
        return self.rng.choices(population, cum_weights=cum)[0]

    def _serial(self, prefix: str) -> str:
        state = self._serials.get(prefix)
        if state is None:
            state = self._serials[prefix] = [self.rng.randrange(1_000_000), 0]
        while True:
            serial = (state[0] + state[1] * SERIAL_STRIDE) % 1_000_000
            state[1] += 1
            pin = f"{prefix}{serial:06d}"
            if pin not in DEMO_PINS:
                return pin

    def _names(self, sex: str, year: int) -> tuple[str, str, str]:
        rng = self.rng
        family = self._pick(self._families, self._family_cum)
        names, cum = self._middles[(sex, year >= 2000)]
        middle = self._pick(names, cum)
        if rng.random() < (0.15 if sex == "female" else 0.05):
            second = self._pick(names, cum)
            if second != middle and second not in TRADITIONAL_MIDDLE:
                middle = f"{middle} {second}"
        given = rng.choice(GIVEN_NAMES[sex])
        if middle.endswith(given):
            given = rng.choice(GIVEN_NAMES[sex])
        return family, middle, given

    def _residence(self, birth_province: str) -> tuple[str, str]:
        rng = self.rng
        code = birth_province if rng.random() < 0.75 else self._pick(self._migration, self._migration_cum)
        province = PROVINCES[code]
        if rng.random() < (0.85 if code in CITIES else 0.35):
            street_kind = "phố" if code == "001" else "đường"
            ward = f"Phường {rng.randint(1, 15)}" if code == "079" else f"Phường {rng.choice(LOCALITIES)}"
            return f"Số {rng.randint(1, 350)} {street_kind} {rng.choice(STREETS)}, {ward}, {province}", province
        hamlet = "Ấp" if code >= "070" else rng.choice(("Thôn", "Xóm"))
        return f"{hamlet} {rng.randint(1, 12)}, Xã {rng.choice(LOCALITIES)}, {province}", province

    def _phone(self, age: int) -> str | None:
        rng = self.rng
        if rng.random() < (0.85 if age < 14 else 0.03):
            return None
        prefix = rng.choice(MOBILE_PREFIXES)[1:]
        rest = 9 - len(prefix)
        nsn = f"{prefix}{rng.randrange(10**rest):0{rest}d}"
        # Registries hold numbers as they were declared: mostly 0xxxxxxxxx, some +84.
        return f"+84{nsn}" if rng.random() < 0.1 else f"0{nsn}"

    def _status(self, age: int) -> str:
        r = self.rng.random()
        deceased = 0.15 if age >= 75 else 0.04 if age >= 55 else 0.003
        if r < deceased:
            return "deceased"
        return "locked" if r < deceased + 0.005 else "active"

    def row(self) -> tuple:
        rng = self.rng
        province = self._pick(self._provinces, self._province_cum)
        year = self._pick(self._years, self._year_cum)
        sex = "female" if rng.random() < 0.5 else "male"
        born = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(366 if year % 4 == 0 else 365))
        pin = self._serial(f"{province}{century_sex_digit(year, sex)}{year % 100:02d}")
        family, middle, given = self._names(sex, year)
        residence, residence_province = self._residence(province)
        age = REFERENCE_YEAR - year
        return (
            pin,
            family,
            middle,
            given,
            f"{family} {middle} {given}",
            born.isoformat(),
            sex,
            residence,
            residence_province,
            self._phone(age),
            self._status(age),
            0,
        )
