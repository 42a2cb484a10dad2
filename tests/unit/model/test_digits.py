"""The one ASCII-digits helper every parse site of outside text uses (``meshop.model.digits``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.model.digits import parse_port, parse_uint


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("0", 10, 0),
        ("7", 10, 7),
        ("10", 10, 10),
        ("11", 10, None),  # over the bound
        ("007", 999, 7),  # leading zeros are digits still
        ("9" * 19, 10**19, 10**19 - 1),
        ("1" + "0" * 19, 10**30, None),  # 20 digits: longer than any count meshop reads
        ("²", 9999, None),  # isdigit() is True, int() raises
        ("1²", 9999, None),
        ("١٢", 9999, None),  # Arabic-Indic: int() would accept it
        ("\uff11\uff12", 9999, None),  # fullwidth
        ("+1", 9999, None),
        ("-1", 9999, None),
        ("-0", 9999, None),
        (" 1", 9999, None),
        ("1 ", 9999, None),
        ("1\n", 9999, None),
        ("1_0", 9999, None),
        ("1.0", 9999, None),
        ("0x1", 9999, None),
        ("", 9999, None),
        ("9" * 5000, 9999, None),  # int() would refuse (or spend time on) this
        ("9" * 5000, 10**30, None),
        (1, 9999, None),  # not text
        (None, 9999, None),
        (b"1", 9999, None),
    ],
    ids=repr,
)
def test_parse_uint_takes_ascii_digits_only(text: object, limit: int, expected: int | None) -> None:
    assert parse_uint(text, limit=limit) == expected


@pytest.mark.parametrize(
    ("text", "zero", "expected"),
    [
        ("80", False, 80),
        ("1", False, 1),
        ("65535", False, 65535),
        ("65536", False, None),
        ("99999", False, None),
        ("0", False, None),
        ("0", True, 0),
        ("00080", False, 80),
        ("000080", False, 80),
        ("\uff18\uff10", False, None),
        ("8²", False, None),
        ("+80", False, None),
        ("", True, None),
    ],
    ids=repr,
)
def test_parse_port(text: str, zero: bool, expected: int | None) -> None:
    assert parse_port(text, zero=zero) == expected


@given(st.text(max_size=12))
def test_parse_uint_never_raises_and_agrees_with_the_ascii_rule(text: str) -> None:
    value = parse_uint(text, limit=10**9)
    if text and len(text) <= 19 and all("0" <= c <= "9" for c in text) and int(text) <= 10**9:
        assert value == int(text)
    else:
        assert value is None


@given(st.integers(min_value=0, max_value=65535))
def test_every_port_round_trips(port: int) -> None:
    assert parse_port(str(port), zero=True) == port
