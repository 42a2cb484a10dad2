"""``requests/<service>/move`` read as hostile input (meshop/model/moves.py)."""

from __future__ import annotations

import json

import pytest

from meshop.model.moves import moves_of, parse_move
from meshop.model.records import MoveRequest, dumps

GOOD = {"id": "1-abcd", "node": "n2", "snapshot": "0123abcd", "requestedAt": 1.0}


def test_a_move_meshop_wrote_is_read_back() -> None:
    assert parse_move(dumps(MoveRequest("1-abcd", "n2", "0123abcd", 1.0)).encode()) == MoveRequest(
        "1-abcd", "n2", "0123abcd", 1.0
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        b"[]",
        b"[" * 100000,
        json.dumps({**GOOD, "node": "../n2"}).encode(),
        json.dumps({**GOOD, "node": "N2 "}).encode(),
        json.dumps({**GOOD, "node": 7}).encode(),
        json.dumps({**GOOD, "snapshot": "latest; rm -rf /"}).encode(),
        json.dumps({**GOOD, "snapshot": "--password-file=/etc/shadow"}).encode(),
        json.dumps({**GOOD, "snapshot": "abc"}).encode(),
        json.dumps({**GOOD, "id": "a/b"}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "node"}).encode(),
    ],
)
def test_anything_else_is_no_move(value: bytes | None) -> None:
    assert parse_move(value) is None


def test_moves_of_keeps_only_valid_move_keys() -> None:
    good = json.dumps(GOOD).encode()
    items = [
        ("requests/db/move", good),
        ("requests/db/restore", good),
        ("requests/Bad_Name/move", good),
        ("requests/a/b/move", good),
        ("other/db/move", good),
        ("requests/web/move", b"{}"),
    ]
    assert moves_of(items) == {"db": MoveRequest("1-abcd", "n2", "0123abcd", 1.0)}
