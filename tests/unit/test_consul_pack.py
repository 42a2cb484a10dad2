"""The one packer of Consul transactions (``meshop.consul.kv``: ``encoded_size``, ``pack``, ``fits``), used by
``meshop apply`` (``KVStore.txn_batches``) and the controller's writer."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.consul.kv import MAX_TXN_BYTES, MAX_TXN_OPS, TXN_ROOM_BYTES, TxnOp, encoded_size, fits, full_key, pack
from meshop.consul.kv import txn_body as body


def request(ops: list[TxnOp], prefix: str) -> str:
    """The body ``KVStore.transact`` sends for ``ops``."""
    encoded = [None if op.value is None else base64.b64encode(op.value).decode() for op in ops]
    return json.dumps(
        [{"KV": body(op, full_key(prefix, op.key), value)} for op, value in zip(ops, encoded, strict=True)]
    )


OPS = st.builds(
    TxnOp,
    verb=st.sampled_from(["set", "cas", "delete", "delete-cas", "delete-tree", "check-index", "check-session"]),
    key=st.text(min_size=1, max_size=40),
    value=st.none() | st.binary(max_size=300),
    index=st.none() | st.integers(min_value=0, max_value=2**63),
    session=st.none() | st.text(max_size=40),
)


@settings(max_examples=50, deadline=None)
@given(ops=st.lists(OPS, min_size=1, max_size=8), prefix=st.sampled_from(["", "meshop", "t-é/ü", 'q"\\\n']))
def test_encoded_size_adds_up_to_the_request_exactly(ops: list[TxnOp], prefix: str) -> None:
    assert sum(encoded_size(op, prefix) for op in ops) == len(request(ops, prefix))


@pytest.mark.parametrize(
    ("weights", "room", "room_bytes", "expected"),
    [
        ([], 64, 100, []),
        ([(1, 10)] * 3, 64, 100, [[0, 1, 2]]),
        ([(1, 10)] * 5, 2, 100, [[0, 1], [2, 3], [4]]),
        ([(1, 40), (1, 40), (1, 40)], 64, 100, [[0, 1], [2]]),
        ([(1, 50), (1, 50), (1, 1)], 64, 100, [[0, 1], [2]]),  # exactly full
        ([(1, 10), (1, 500), (1, 10)], 64, 100, [[0], [1], [2]]),  # too heavy: a batch of its own
        ([(3, 1), (3, 1), (2, 1)], 6, 100, [[0, 1], [2]]),  # units of several operations
        ([(3, 1), (4, 1)], 6, 100, [[0], [1]]),
        ([(9, 1), (1, 1)], 6, 100, [[0], [1]]),  # too many operations: alone as well
    ],
    ids=[
        "none",
        "all-fit",
        "by-count",
        "by-bytes",
        "exactly-full",
        "oversize-alone",
        "units",
        "unit-overflows",
        "too-many-ops",
    ],
)
def test_pack(weights: list[tuple[int, int]], room: int, room_bytes: int, expected: list[list[int]]) -> None:
    assert list(pack(range(len(weights)), lambda i: weights[i], room, room_bytes)) == expected


def test_pack_is_lazy_a_batch_leaves_when_the_next_item_does_not_fit() -> None:
    seen: list[int] = []

    def items():
        for i in range(5):
            seen.append(i)
            yield i

    batches = pack(items(), lambda i: (1, 60), 64, 100)
    assert next(batches) == [0] and seen == [0, 1]


@pytest.mark.parametrize(
    ("ops", "size", "expected"),
    [
        (MAX_TXN_OPS, TXN_ROOM_BYTES, True),
        (MAX_TXN_OPS + 1, 10, False),
        (1, TXN_ROOM_BYTES + 1, False),
        (1, MAX_TXN_BYTES, False),  # the brackets of the body need room too
    ],
    ids=["limits", "too-many", "too-large", "brackets"],
)
def test_fits(ops: int, size: int, expected: bool) -> None:
    assert fits(ops, size) is expected


def test_a_full_default_pack_is_a_request_consul_takes() -> None:
    ops = [TxnOp.set(f"k/{i}", b"v" * 10_000) for i in range(200)]
    batches = list(pack(ops, lambda op: (1, encoded_size(op, "meshop"))))
    assert [len(b) for b in batches] == [39, 39, 39, 39, 39, 5]
    assert all(len(request(b, "meshop")) <= MAX_TXN_BYTES for b in batches)
    assert len(request(batches[0] + batches[1][:1], "meshop")) > MAX_TXN_BYTES  # and each is as full as can be
