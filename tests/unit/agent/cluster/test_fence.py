"""The fence rule (``meshop.agent.cluster.fence``): table tests of ``judge`` and the agent's behaviour on a
KV that was emptied, rolled back or adopted (in-memory store and engine; the real-component proof is
tests/integration/faults/test_empty_kv.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshop.agent.cluster.fence import judge
from meshop.agent.planning.plan import Container
from meshop.model import keys
from meshop.model.records import Fence, dumps, loads_json
from tests.unit.agent.rig import NODE, SLEEP, FakeStore, make_rig

T1, T2 = "aaaa", "bbbb"


@pytest.mark.parametrize(
    ("remembered", "pending", "fence", "verdict"),
    [
        (None, None, None, "claim"),
        (None, None, Fence(NODE, T1), "trust"),
        (T1, None, Fence(NODE, T1), "trust"),
        (T1, T2, Fence(NODE, T2), "trust"),  # stopped between the KV write and the state file
        (T1, None, None, "missing"),
        (T1, None, Fence(NODE, T2), "foreign"),
        (T1, T2, Fence(NODE, "cccc"), "foreign"),
        (T1, None, Fence(NODE, T2, adopt=True), "adopt"),
        (None, None, Fence(NODE, adopt=True), "adopt"),
    ],
    ids=[
        "new-node-claims",
        "new-state-dir-trusts-kv",
        "same-token",
        "pending-token",
        "emptied-kv",
        "rolled-back-kv",
        "rolled-back-kv-pending",
        "adopted",
        "adopted-new-node",
    ],
)
def test_judge(remembered: str | None, pending: str | None, fence: Fence | None, verdict: str) -> None:
    judgement = judge(remembered, pending, fence, NODE)
    assert judgement.verdict == verdict
    assert bool(judgement.problem) == (verdict in ("missing", "foreign"))
    if judgement.problem:
        assert f"meshop cluster adopt {NODE}" in judgement.problem


def _fence(store: FakeStore) -> Fence:
    return Fence.from_dict(loads_json(store.data[keys.fence(NODE)]))


def _orphan() -> Container:
    return Container("x", "x", "other", 0, "h", "h", 1, "img:1", "running")


def test_first_pass_claims_the_fence_and_a_change_rotates_it(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.assign("web", SLEEP)
    rig.settle()
    first = _fence(rig.store)
    assert first.epoch == 1 and rig.reader.fence.remembered == first.token
    rig.settle()
    assert _fence(rig.store) == first  # nothing changed: no write
    rig.assign("db", SLEEP)
    rig.settle()
    assert _fence(rig.store).epoch == 2 and _fence(rig.store).token != first.token


@pytest.mark.parametrize("how", ["emptied", "rolled-back", "unreadable"])
def test_a_kv_that_is_not_its_own_costs_no_container(tmp_path: Path, how: str) -> None:
    rig = make_rig(tmp_path)
    rig.assign("web", SLEEP, replicas=2)
    rig.settle()
    old = dict(rig.store.data)
    rig.assign("db", SLEEP)  # after the "snapshot": rotates the fence
    rig.settle()
    rig.runtime.containers["x"] = _orphan()
    before = set(rig.runtime.containers)
    if how == "emptied":
        rig.store.data.clear()
    elif how == "rolled-back":
        rig.store.data = old
    else:
        rig.store.data[keys.fence(NODE)] = b"{not json"
    rig.settle()
    assert set(rig.runtime.containers) == before
    assert not rig.reconciler.authoritative and "meshop cluster adopt" in rig.reconciler.kv_problem
    victim = next(c for c in rig.runtime.containers.values() if c.service == "db")
    del rig.runtime.containers[victim.id]
    rig.settle()
    assert sum(c.service == "db" for c in rig.runtime.containers.values()) == 1  # drift still repaired
    # a restarted agent (same state file) still refuses the KV
    again = make_rig(tmp_path, runtime=rig.runtime, store=rig.store)
    again.settle()
    assert again.reconciler.kv_problem and "x" in rig.runtime.containers


def test_adopt_makes_the_kv_authoritative_again(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.assign("web", SLEEP)
    rig.settle()
    rig.store.data.clear()
    rig.runtime.containers["x"] = _orphan()
    rig.settle()
    assert "x" in rig.runtime.containers
    rig.assign("web", SLEEP)  # the desired state restored (meshop import)
    rig.store.data[keys.fence(NODE)] = dumps(Fence(NODE, adopt=True)).encode()  # meshop cluster adopt
    rig.settle()
    assert rig.reconciler.kv_problem == "" and rig.reconciler.authoritative
    assert not _fence(rig.store).adopt and _fence(rig.store).token == rig.reader.fence.remembered
    assert "x" not in rig.runtime.containers  # deliberate now: the orphan goes
    assert [c.service for c in rig.runtime.containers.values()] == ["web"]


def test_deliberate_removal_of_every_service_still_removes(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.assign("web", SLEEP, replicas=3)
    rig.assign("db", SLEEP)
    rig.settle()
    for key in [k for k in rig.store.data if k.startswith(keys.ASSIGNMENTS)]:
        del rig.store.data[key]
    rig.settle()
    assert rig.runtime.containers == {} and rig.reconciler.kv_problem == ""


def test_agent_events_keep_the_log_within_its_bound_exactly() -> None:
    """The journal deletes the oldest events beyond the bound in the transaction that adds its own."""
    from meshop.agent.cluster.journal import Journal

    store = FakeStore()
    journal = Journal(store, NODE)  # type: ignore[arg-type]
    journal.log.max_events = 40
    for round_ in range(3):
        for i in range(30):
            journal.add("Created", f"service/s{i}", f"round {round_}")
        assert journal.flush() == 30
        assert len([k for k in store.data if k.startswith(keys.EVENTS)]) == min(40, 30 * (round_ + 1))


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("unassign"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.sampled_from(["snapshot", "restore", "wipe", "adopt"]), st.just("")),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_property_only_a_trusted_kv_removes_anything(tmp_path: Path, ops: list[tuple[str, str]]) -> None:
    """Whatever happens to the KV (deliberate changes, snapshots restored, wipes, adoptions): while the
    agent trusts it, its containers are exactly what it assigns; while it does not, nothing is removed."""
    rig = make_rig(tmp_path / secrets.token_hex(4))
    snapshots: list[dict[str, bytes]] = []
    for op, name in ops:
        before = {c.service for c in rig.runtime.containers.values()}
        if op == "assign":
            rig.assign(name, SLEEP)
        elif op == "unassign":
            rig.store.data.pop(keys.assignment(NODE, name), None)
        elif op == "snapshot":
            snapshots.append(dict(rig.store.data))
        elif op == "restore" and snapshots:
            rig.store.data = dict(snapshots[-1])
        elif op == "wipe":
            rig.store.data.clear()
        elif op == "adopt":
            rig.store.data[keys.fence(NODE)] = dumps(Fence(NODE, adopt=True)).encode()
        rig.settle(3)
        running = {c.service for c in rig.runtime.containers.values()}
        assigned = {k.rsplit("/", 1)[1] for k in rig.store.data if k.startswith(keys.node_assignments(NODE))}
        if rig.reconciler.kv_problem:
            assert running >= before, (op, before, running)
            assert not rig.reconciler.authoritative
        else:
            assert running == assigned, (op, running, assigned)
        if op == "wipe" and before:
            assert rig.reconciler.kv_problem  # a fence was written before, so an empty KV is never trusted
