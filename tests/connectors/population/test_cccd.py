from __future__ import annotations

import pytest

from connectors.population.cccd import PROVINCES, InvalidPin, century_sex_digit, make_pin, normalize_pin, parse_pin


def test_century_and_sex_digit() -> None:
    assert century_sex_digit(1990, "male") == 0
    assert century_sex_digit(1985, "female") == 1
    assert century_sex_digit(2002, "male") == 2
    assert century_sex_digit(2015, "female") == 3
    with pytest.raises(ValueError):
        century_sex_digit(1899, "male")


def test_demo_pin_parts() -> None:
    parts = parse_pin("001090000001")
    assert (parts.province_code, parts.century_sex_digit, parts.birth_year, parts.sex, parts.serial) == (
        "001",
        0,
        1990,
        "male",
        "000001",
    )
    assert parse_pin("048302000004").birth_year == 2002
    assert parse_pin("048302000004").sex == "female"
    assert make_pin("079", 1985, "female", 3) == "079185000003"


def test_province_codes_are_the_real_ones() -> None:
    assert len(PROVINCES) == 63
    assert PROVINCES["001"] == "Hà Nội"
    assert PROVINCES["079"] == "TP Hồ Chí Minh"
    assert PROVINCES["048"] == "Đà Nẵng"
    assert PROVINCES["096"] == "Cà Mau"
    assert "003" not in PROVINCES


@pytest.mark.parametrize("bad", ["", "00109000000", "0010900000011", "00109000000a", "003090000001", "001490000001"])
def test_malformed_pins(bad: str) -> None:
    with pytest.raises(InvalidPin):
        parse_pin(bad)


def test_spaces_are_ignored() -> None:
    assert normalize_pin(" 001 090 000 001 ") == "001090000001"


@pytest.mark.parametrize(
    "raw",
    [
        " 001090000001",
        "001090000001\t",
        "001\u3000090000001",
        "００１０９００００００１",  # full-width digits
        "٠٠١٠٩٠٠٠٠٠٠١",  # Arabic-Indic digits
        "\n001 090\u00a0000 001\r\n",
    ],
)
def test_unicode_variants_are_one_pin(raw: str) -> None:
    assert normalize_pin(raw) == "001090000001"


@pytest.mark.parametrize(
    "raw", ["001090000001\u200b", "00109000000", "0010900000011", "001-090-000-001", "00109000000a", "0010900000O1", None]
)
def test_pin_lookalikes_are_refused(raw) -> None:  # noqa: ANN001
    with pytest.raises(InvalidPin):
        normalize_pin(raw)
