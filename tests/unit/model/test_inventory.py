"""The node address inventory's stored form: a broken entry grants nothing."""

from __future__ import annotations

import pytest

from meshop.model.inventory import inventory_value, parse_inventory


def test_round_trip() -> None:
    assert parse_inventory(inventory_value(["100.64.0.11", "fd7a::11"])) == ("100.64.0.11", "fd7a::11")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"[",
        b"[]",
        b"[" * 100_000,
        b"\xff",
        b'{"addresses": []}',
        b'{"addresses": "10.0.0.1"}',
        b'{"addresses": [1]}',
        b'{"addresses": [""]}',
        b'{"address": ["10.0.0.1"]}',
        ('{"addresses": [' + ",".join(['"a"'] * 17) + "]}").encode(),
    ],
)
def test_broken_entries_grant_nothing(raw: bytes | None) -> None:
    assert parse_inventory(raw) is None
