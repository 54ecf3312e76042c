"""connectors.base.canonical_username: one spelling per username for lookups and throttle keys."""

from __future__ import annotations

import pytest

from connectors.base import canonical_username


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (" nguyenvanan", "nguyenvanan"),
        ("NguyenVanAn\t", "nguyenvanan"),
        ("ＮｇｕｙｅｎＶａｎＡｎ", "nguyenvanan"),  # full-width (NFKC)
        ("Nguyễn  Văn\u3000An", "nguyễn văn an"),  # inner whitespace collapsed
        ("Nguye\u0302\u0303n", "nguyễn"),  # combining marks composed
        ("Straße", "strasse"),  # case folding, not lower()
        ("an.nguyen@MOF.gov.vn", "an.nguyen@mof.gov.vn"),
    ],
)
def test_variants_share_one_spelling(raw: str, canonical: str) -> None:
    assert canonical_username(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\t\n", "an\x00", "an\x7f", "a\u200bn", "an\u202e", "an\ufeff", "x" * 129, None, 42],
    ids=["empty", "spaces", "whitespace", "nul", "del", "zwsp", "bidi", "bom", "too-long", "none", "int"],
)
def test_refused(raw) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        canonical_username(raw)


def test_128_characters_is_the_limit() -> None:
    assert canonical_username("A" * 128) == "a" * 128
