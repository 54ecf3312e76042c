from __future__ import annotations

import pytest

from connectors.telecom.phone import InvalidPhoneNumber, mask_msisdn, national_format, normalize_msisdn


@pytest.mark.parametrize(
    "raw",
    ["0912345678", "+84912345678", "84912345678", "0084912345678", "0912 345 678", "091.234.5678", "+84 (91) 234-5678"],
)
def test_every_usual_form_normalizes_to_e164(raw: str) -> None:
    assert normalize_msisdn(raw) == "+84912345678"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "091234567",  # 9 digits
        "09123456789",  # 11 digits
        "0241234567",  # a Hà Nội landline, not a mobile
        "+14155550100",  # not Vietnamese
        "0912abc678",
        "849123456789",
    ],
)
def test_anything_else_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_msisdn(raw)


def test_new_mobile_prefixes_are_accepted() -> None:
    assert normalize_msisdn("0356789012") == "+84356789012"
    assert normalize_msisdn("0701234567") == "+84701234567"
    assert normalize_msisdn("0561234567") == "+84561234567"
    assert normalize_msisdn("0861234567") == "+84861234567"


def test_masked_destination_shows_prefix_and_last_three_digits() -> None:
    assert mask_msisdn("+84912345678") == "091****678"
    assert mask_msisdn("0356789012") == "035****012"
    assert national_format("+84912345678") == "0912345678"


@pytest.mark.parametrize(
    "raw",
    [
        "０９１２３４５６７８",  # full-width digits
        "٠٩١٢٣٤٥٦٧٨",  # Arabic-Indic digits
        "۰۹۱۲۳۴۵۶۷۸",  # Extended Arabic-Indic (Persian) digits
        "0912\u3000345\u3000678",  # ideographic spaces inside
        "\t0912345678\n",
        "＋８４９１２３４５６７８",  # full-width plus too
        "0912\u00a0345\u2009678",  # no-break and thin spaces
    ],
)
def test_unicode_variants_are_one_number(raw: str) -> None:
    assert normalize_msisdn(raw) == "+84912345678"


@pytest.mark.parametrize(
    "raw",
    [
        "0912abc678",  # libphonenumber alone would read letters as a keypad
        "0912345678 ext. 12",
        "0912345678;ext=12",
        "+84912345678+",
        "0912345678\u200b",  # a zero-width space is not whitespace
        "0212345678",  # not a mobile range
        "0890000000",  # 089 is mobile only from 0896
        None,
    ],
)
def test_lookalikes_and_non_mobiles_are_refused(raw) -> None:  # noqa: ANN001
    with pytest.raises(InvalidPhoneNumber):
        normalize_msisdn(raw)
