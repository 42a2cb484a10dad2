"""``requests/<service>/move`` (``meshop volume restore --to-node``), read strictly by everyone.

Operators write the record, but the controller and the agents read it as hostile input: a record that
fails the codec, names a node or service that is not a DNS label, or a snapshot that is neither
``latest`` nor 8-64 hex digits is no move at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from meshop.model import keys
from meshop.model.codec import RecordError
from meshop.model.names import is_dns_label
from meshop.model.records import MoveRequest, loads_json

SNAPSHOT_REF = re.compile(r"latest|[0-9a-f]{8,64}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def parse_move(value: bytes | None) -> MoveRequest | None:
    """The move request in ``value``, or None when there is none or it is not one meshop wrote."""
    if value is None:
        return None
    try:
        move = MoveRequest.from_dict(loads_json(value))
    except (RecordError, ValueError):
        return None
    ok = _REQUEST_ID.fullmatch(move.id) and is_dns_label(move.node) and SNAPSHOT_REF.fullmatch(move.snapshot)
    return move if ok else None


def moves_of(items: Iterable[tuple[str, bytes]]) -> dict[str, MoveRequest]:
    """service -> its valid move request, from (key, value) of a listing of ``requests/``; anything else
    is skipped."""
    found: dict[str, MoveRequest] = {}
    for key, value in items:
        parts = key.removeprefix(keys.REQUESTS).split("/")
        if not key.startswith(keys.REQUESTS) or len(parts) != 2 or parts[1] != "move":
            continue
        move = parse_move(value) if is_dns_label(parts[0]) else None
        if move is not None:
            found[parts[0]] = move
    return found
