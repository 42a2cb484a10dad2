"""``meshop apply`` of many documents against a real Consul: one transaction, all or nothing, split only
past Consul's limits (and then it says so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshop.client.apply import apply_changes, plan_changes, read_existing
from meshop.client.checks import check_all
from meshop.client.sources import read_sources
from meshop.consul.store import MAX_TXN_BYTES, MAX_TXN_OPS, KVStore, TxnOp
from meshop.errors import ConflictError
from meshop.model import keys

DOC = """\
apiVersion: meshop.io/v1alpha1
kind: Service
metadata: {name: %s}
spec:
  image: meshop-test/busybox:1
  replicas: %d
"""


def write_docs(directory: Path, names: list[str], replicas: int = 1) -> None:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / f"{name}.yaml").write_text(DOC % (name, replicas))


def replicas_of(store: KVStore, name: str) -> int | None:
    entry = store.get(keys.desired_service(name))
    return json.loads(entry.value)["spec"]["replicas"] if entry else None


def test_many_documents_land_in_one_transaction(meshop, store: KVStore, tmp_path: Path) -> None:
    names = [f"svc{i:02d}" for i in range(40)]
    write_docs(tmp_path / "docs", names)
    code, out, err = meshop("apply", "-f", str(tmp_path / "docs"))
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"service/{name} created" for name in names]
    indexes = {store.get(keys.desired_service(name)).modify_index for name in names}
    assert len(indexes) == 1  # every key written by the same Raft entry: one transaction


def test_a_document_changed_since_read_fails_the_whole_apply(store: KVStore, tmp_path: Path) -> None:
    """The race apply guards against: someone writes b between apply's read and its write."""
    write_docs(tmp_path / "v1", ["a", "b", "c"], replicas=1)
    documents = read_sources((str(tmp_path / "v1"),))
    check_all(documents)
    apply_changes(store, plan_changes(documents, read_existing(store, documents)))

    write_docs(tmp_path / "v2", ["a", "b", "c"], replicas=2)
    documents = read_sources((str(tmp_path / "v2"),))
    check_all(documents)
    changes = plan_changes(documents, read_existing(store, documents))
    concurrent = json.loads(store.get(keys.desired_service("b")).value)
    concurrent["spec"]["replicas"] = 5
    store.put(keys.desired_service("b"), json.dumps(concurrent))  # after the read, before the write

    with pytest.raises(ConflictError) as caught:
        apply_changes(store, changes)
    message = str(caught.value)
    assert message.startswith("service/b changed in Consul since apply read it")
    assert "nothing was written" in message
    assert (replicas_of(store, "a"), replicas_of(store, "b"), replicas_of(store, "c")) == (1, 5, 1)


def test_a_document_created_since_read_fails_the_whole_apply(store: KVStore, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", ["x", "y"])
    documents = read_sources((str(tmp_path / "docs"),))
    check_all(documents)
    changes = plan_changes(documents, read_existing(store, documents))
    store.put(keys.desired_service("y"), DOC % ("y", 7))
    with pytest.raises(ConflictError, match=r"^service/y changed in Consul"):
        apply_changes(store, changes)
    assert store.get(keys.desired_service("x")) is None


def test_past_64_documents_apply_splits_and_says_so(meshop, store: KVStore, tmp_path: Path) -> None:
    names = [f"s{i:03d}" for i in range(MAX_TXN_OPS + 6)]
    write_docs(tmp_path / "docs", names)
    code, out, err = meshop("apply", "-f", str(tmp_path / "docs"))
    assert code == 0
    assert len(out.splitlines()) == len(names)
    assert "written in 2 transactions" in err
    indexes = [store.get(keys.desired_service(name)).modify_index for name in names]
    assert len(set(indexes[:MAX_TXN_OPS])) == 1 and len(set(indexes[MAX_TXN_OPS:])) == 1
    assert indexes[0] != indexes[-1]


def test_batches_respect_the_request_size_and_a_huge_value_goes_alone(store: KVStore) -> None:
    big = "x" * (200 * 1024)  # base64: ~267 KiB, so two of them do not share one request
    huge = "y" * (450 * 1024)  # base64: ~600 KiB, more than any transaction takes
    ops = [TxnOp.cas("k/a", big, 0), TxnOp.cas("k/b", big, 0), TxnOp.cas("k/c", "small", 0), TxnOp.cas("k/d", huge, 0)]
    batches = store.txn_batches(ops)
    assert [[op.key for op in batch] for batch in batches] == [["k/a"], ["k/b", "k/c"], ["k/d"]]
    assert not store.fits_txn(ops[3]) and store.fits_txn(ops[0])
    for batch in batches[:2]:
        store.transact(batch)  # Consul accepts each (it answers 413 past MAX_TXN_BYTES)
    assert store.get("k/c").value == b"small"
    assert sum(store.txn_size(op) for op in batches[1]) < MAX_TXN_BYTES


def test_large_documents_in_a_multi_document_apply_are_split_across_transactions(
    meshop, store: KVStore, tmp_path: Path
) -> None:
    """Two documents of ~200 KB (each under the controller's spec limit, MAX_SPEC_BYTES; a larger one is
    refused up front now) cannot share one 512 KiB transaction once base64-encoded."""
    directory = tmp_path / "docs"
    write_docs(directory, ["small"])
    env = "  env:\n" + "".join(f"    - {{name: V{i}, value: '{'v' * 1700}'}}\n" for i in range(115))
    for name in ("zbig", "zbig2"):
        (directory / f"{name}.yaml").write_text((DOC % (name, 1)) + env)
    code, out, err = meshop("apply", "-f", str(directory))
    assert code == 0, err
    assert out.splitlines() == ["service/small created", "service/zbig created", "service/zbig2 created"]
    assert "written in 2 transactions" in err
    assert replicas_of(store, "zbig") == 1
