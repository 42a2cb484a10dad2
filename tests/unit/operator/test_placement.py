"""Placement table: every rule, which nodes get how many replicas, and why a placement is impossible."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from meshop.operator.placement import (
    INSUFFICIENT_CAPACITY,
    NO_MATCHING_NODE,
    NODE_LOST,
    STATEFUL_NODE_LOST,
    place,
)
from meshop.operator.view import NodeState, NodeView, Workload

GiB = 1024**3
READY, SUSPECT, NOT_READY = NodeState.READY, NodeState.SUSPECT, NodeState.NOT_READY


def n(name: str, **kw: object) -> NodeView:
    return NodeView(name, **kw)  # type: ignore[arg-type]


def w(name: str, **kw: object) -> Workload:
    return Workload(name, **kw)  # type: ignore[arg-type]


@dataclass
class Case:
    id: str
    services: list[Workload]
    nodes: list[NodeView]
    expect: Mapping[str, Mapping[str, int]]  # service -> node -> replicas assigned
    current: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    ready: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    frozen: Mapping[str, tuple[Workload, Mapping[str, int]]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)  # service -> reason ("" = fully scheduled)
    moving: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    stranded: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    message_has: Mapping[str, str] = field(default_factory=dict)


THREE = [n("n1"), n("n2"), n("n3")]

CASES = [
    # --- pinned node -------------------------------------------------------------------------------
    Case("pinned-node", [w("web", node="n2")], THREE, {"web": {"n2": 1}}),
    Case(
        "pinned-node-cordoned-gets-nothing-new",
        [w("web", node="n2")],
        [n("n1"), n("n2", cordon=True)],
        {"web": {}},
        reasons={"web": NO_MATCHING_NODE},
        message_has={"web": "n2"},
    ),
    Case(
        "pinned-node-not-registered",
        [w("web", node="n9")],
        THREE,
        {"web": {}},
        reasons={"web": NO_MATCHING_NODE},
        message_has={"web": "pinned node n9 is not registered"},
    ),
    Case(
        "pinned-node-lost-waits-and-keeps-its-assignment",
        [w("web", node="n1", replicas=2, spread=False)],
        [n("n1", state=NOT_READY), n("n2")],
        {"web": {"n1": 2}},
        current={"web": {"n1": 2}},
        reasons={"web": NODE_LOST},
        stranded={"web": {"n1": 2}},
        message_has={"web": "waiting for pinned node n1"},
    ),
    Case(
        "pinned-node-lost-before-first-placement",
        [w("web", node="n1")],
        [n("n1", state=NOT_READY), n("n2")],
        {"web": {}},
        reasons={"web": NODE_LOST},
    ),
    # --- stateful services: their data lives on their node (docs/stateful.md) ------------------------
    Case(
        "stateful-failover-none-waits-for-its-lost-node",
        [w("db", failover="none")],
        [n("n1", state=NOT_READY), n("n2")],
        {"db": {"n1": 1}},
        current={"db": {"n1": 1}},
        reasons={"db": STATEFUL_NODE_LOST},
        stranded={"db": {"n1": 1}},
        message_has={"db": "waits for node n1 (NotReady)"},
    ),
    Case(
        "stateful-restore-latest-moves-off-a-lost-node-in-one-plan",
        [w("db", failover="restore-latest")],
        [n("n1", state=NOT_READY), n("n2")],
        {"db": {"n2": 1}},
        current={"db": {"n1": 1}},
    ),
    Case(
        "stateful-never-moves-off-a-suspect-node",
        [w("db", failover="restore-latest")],
        [n("n1", state=SUSPECT), n("n2")],
        {"db": {"n1": 1}},
        current={"db": {"n1": 1}},
    ),
    Case(
        "stateful-stays-on-a-draining-node",  # no start-first move: the new copy could never take the lock
        [w("db", failover="restore-latest")],
        [n("n1", drain=True), n("n2")],
        {"db": {"n1": 1}},
        current={"db": {"n1": 1}},
        ready={"db": {"n1": 1}},
    ),
    Case(
        "stateful-stays-when-its-selector-changes",
        [w("db", failover="none", node_selector={"disk": "ssd"})],
        [n("n1"), n("n2", labels={"disk": "ssd"})],
        {"db": {"n1": 1}},
        current={"db": {"n1": 1}},
    ),
    Case(
        "stateful-scales-to-zero",
        [w("db", failover="none", replicas=0)],
        THREE,
        {"db": {}},
        current={"db": {"n1": 1}},
    ),
    Case("stateful-first-placement-is-ordinary", [w("db", failover="none")], THREE, {"db": {"n1": 1}}),
    Case(
        "stateful-placed-anew-goes-back-to-its-data",  # scaled 0 -> 1: its lock names n3
        [w("db", failover="none", home="n3")],
        THREE,
        {"db": {"n3": 1}},
    ),
    Case(
        "stateful-home-unfit-goes-elsewhere",
        [w("db", failover="restore-latest", home="n3")],
        [n("n1"), n("n2"), n("n3", cordon=True)],
        {"db": {"n1": 1}},
    ),
    # --- nodeSelector ------------------------------------------------------------------------------
    Case(
        "node-selector-picks-the-labelled-node",
        [w("db", node_selector={"disk": "ssd"})],
        [n("n1", labels={"disk": "hdd"}), n("n2", labels={"disk": "ssd"}), n("n3")],
        {"db": {"n2": 1}},
    ),
    Case(
        "node-selector-matches-no-node",
        [w("db", node_selector={"disk": "nvme"})],
        [n("n1", labels={"disk": "hdd"}), n("n2", labels={"disk": "ssd"})],
        {"db": {}},
        reasons={"db": NO_MATCHING_NODE},
        message_has={"db": "nodeSelector mismatch: n1, n2"},
    ),
    # --- spread ------------------------------------------------------------------------------------
    Case("spread-one-per-node", [w("web", replicas=3)], THREE, {"web": {"n1": 1, "n2": 1, "n3": 1}}),
    Case(
        "spread-more-replicas-than-nodes",
        [w("web", replicas=3)],
        [n("n1"), n("n2")],
        {"web": {"n1": 1, "n2": 1}},
        reasons={"web": NO_MATCHING_NODE},
        message_has={"web": "2/3 replicas placed"},
    ),
    Case("no-spread-stacks-on-one-node", [w("web", replicas=3, spread=False)], [n("n1")], {"web": {"n1": 3}}),
    Case(
        "no-spread-still-balances",
        [w("web", replicas=3, spread=False)],
        [n("n1"), n("n2")],
        {"web": {"n1": 2, "n2": 1}},
    ),
    Case(
        "spread-goes-to-the-least-loaded-node",
        [w("web", memory=1 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=4 * GiB)],
        {"web": {"n2": 1}, "old": {"n1": 1}},
        frozen={"old": (w("old", memory=2 * GiB), {"n1": 1})},
    ),
    # --- group co-location -------------------------------------------------------------------------
    Case(
        "group-members-share-a-node",
        [w("app", group="g"), w("cache", group="g")],
        THREE,
        {"app": {"n1": 1}, "cache": {"n1": 1}},
    ),
    Case(
        "group-follows-where-it-already-runs",
        [w("app", group="g"), w("cache", group="g")],
        THREE,
        {"app": {"n3": 1}, "cache": {"n3": 1}},
        current={"app": {"n3": 1}},
    ),
    Case(
        "group-follows-a-members-pin",
        [w("app", group="g"), w("cache", group="g", node="n2")],
        THREE,
        {"app": {"n2": 1}, "cache": {"n2": 1}},
    ),
    Case(
        "group-members-pinned-to-different-nodes",
        [w("app", group="g", node="n1"), w("cache", group="g", node="n2")],
        THREE,
        {"app": {}, "cache": {}},
        reasons={"app": NO_MATCHING_NODE, "cache": NO_MATCHING_NODE},
        message_has={"app": "pinned to different nodes (n1, n2)"},
    ),
    Case(
        "group-needs-one-node-with-room-for-all",
        [w("app", group="g", memory=3 * GiB), w("cache", group="g", memory=3 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=8 * GiB)],
        {"app": {"n2": 1}, "cache": {"n2": 1}},
    ),
    Case(
        "group-fits-on-no-node",
        [w("app", group="g", memory=3 * GiB), w("cache", group="g", memory=3 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=4 * GiB)],
        {"app": {}, "cache": {}},
        reasons={"app": INSUFFICIENT_CAPACITY, "cache": INSUFFICIENT_CAPACITY},
        message_has={"cache": "group g: no node fits all 2 members"},
    ),
    # --- capacity ----------------------------------------------------------------------------------
    Case(
        "memory-request-skips-a-small-node",
        [w("big", memory=6 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=8 * GiB)],
        {"big": {"n2": 1}},
    ),
    Case(
        "capacity-counts-what-is-already-placed",
        [w("db", memory=2 * GiB), w("web", memory=3 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=4 * GiB)],
        {"db": {"n1": 1}, "web": {"n2": 1}},
        current={"db": {"n1": 1}},
    ),
    Case(
        "cpu-request",
        [w("cruncher", cpus=2.0)],
        [n("n1", cpus=1.0), n("n2", cpus=4.0)],
        {"cruncher": {"n2": 1}},
    ),
    Case(
        "insufficient-capacity-everywhere",
        [w("big", memory=16 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=8 * GiB), n("n3", cordon=True)],
        {"big": {}},
        reasons={"big": INSUFFICIENT_CAPACITY},
        message_has={"big": "insufficient memory: n1, n2; cordoned: n3"},
    ),
    Case(
        "unreported-capacity-is-not-limited",
        [w("big", memory=64 * GiB, cpus=32.0)],
        [n("n1")],
        {"big": {"n1": 1}},
    ),
    Case(
        "invalid-services-still-take-room",
        [w("web", memory=3 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=4 * GiB)],
        {"web": {}},
        frozen={"a": (w("a", memory=2 * GiB), {"n1": 1}), "b": (w("b", memory=2 * GiB), {"n2": 1})},
        reasons={"web": INSUFFICIENT_CAPACITY},
    ),
    Case(
        "fixed-host-port-clashes",
        [w("web", host_ports=frozenset({"80/tcp"}))],
        [n("n1"), n("n2")],
        {"web": {"n2": 1}},
        frozen={"proxy": (w("proxy", host_ports=frozenset({"80/tcp"})), {"n1": 1})},
    ),
    Case(
        "fixed-host-port-cannot-stack",
        [w("web", replicas=2, spread=False, host_ports=frozenset({"80/tcp"}))],
        [n("n1")],
        {"web": {"n1": 1}},
        reasons={"web": NO_MATCHING_NODE},
        message_has={"web": "host port in use: n1"},
    ),
    # --- sticky ------------------------------------------------------------------------------------
    Case(
        "sticky-a-joining-node-changes-nothing",
        [w("web", replicas=2)],
        [n("n1"), n("n2"), n("n3-new")],
        {"web": {"n1": 1, "n2": 1}},
        current={"web": {"n1": 1, "n2": 1}},
        ready={"web": {"n1": 1, "n2": 1}},
    ),
    Case(
        "sticky-even-when-over-capacity-now",
        [w("web", memory=6 * GiB)],
        [n("n1", memory=4 * GiB), n("n2", memory=8 * GiB)],
        {"web": {"n1": 1}},
        current={"web": {"n1": 1}},
    ),
    Case(
        "sticky-on-a-suspect-node-but-nothing-new-there",
        [w("web", replicas=2)],
        [n("n1", state=SUSPECT), n("n2", state=SUSPECT), n("n3")],
        {"web": {"n1": 1, "n3": 1}},
        current={"web": {"n1": 1}},
    ),
    # --- cordon ------------------------------------------------------------------------------------
    Case(
        "cordoned-node-keeps-work-but-gets-none",
        [w("web", replicas=2), w("api")],
        [n("n1", cordon=True), n("n2")],
        {"web": {"n1": 1, "n2": 1}, "api": {"n2": 1}},
        current={"web": {"n1": 1}},
    ),
    # --- drain (start-first) -----------------------------------------------------------------------
    Case(
        "drain-starts-a-replacement-and-keeps-the-old-copy",
        [w("web")],
        [n("n1", drain=True), n("n2")],
        {"web": {"n1": 1, "n2": 1}},
        current={"web": {"n1": 1}},
        ready={"web": {"n1": 1}},
        moving={"web": {"n1": 1}},
    ),
    Case(
        "drain-removes-the-old-copy-once-the-replacement-is-ready",
        [w("web")],
        [n("n1", drain=True), n("n2")],
        {"web": {"n2": 1}},
        current={"web": {"n1": 1, "n2": 1}},
        ready={"web": {"n1": 1, "n2": 1}},
    ),
    Case(
        "drain-waits-while-the-replacement-is-not-ready",
        [w("web")],
        [n("n1", drain=True), n("n2")],
        {"web": {"n1": 1, "n2": 1}},
        current={"web": {"n1": 1, "n2": 1}},
        ready={"web": {"n1": 1, "n2": 0}},
        moving={"web": {"n1": 1}},
    ),
    Case(
        "drain-with-nowhere-to-go-keeps-the-service-up",
        [w("web", memory=6 * GiB)],
        [n("n1", drain=True), n("n2", memory=4 * GiB)],
        {"web": {"n1": 1}},
        current={"web": {"n1": 1}},
        ready={"web": {"n1": 1}},
        reasons={"web": INSUFFICIENT_CAPACITY},
        moving={"web": {"n1": 1}},
    ),
    Case(
        "drain-releases-copies-one-by-one-as-replacements-get-ready",
        [w("web", replicas=2, spread=False)],
        [n("n1", drain=True), n("n2")],
        {"web": {"n1": 1, "n2": 2}},
        current={"web": {"n1": 2, "n2": 2}},
        ready={"web": {"n1": 2, "n2": 1}},
        moving={"web": {"n1": 1}},
    ),
    Case(
        "a-selector-change-moves-start-first",
        [w("db", node_selector={"disk": "ssd"})],
        [n("n1", labels={"disk": "hdd"}), n("n2", labels={"disk": "ssd"})],
        {"db": {"n1": 1, "n2": 1}},
        current={"db": {"n1": 1}},
        ready={"db": {"n1": 1}},
        moving={"db": {"n1": 1}},
    ),
    # --- node policy -------------------------------------------------------------------------------
    Case(
        "privileged-needs-a-node-that-allows-it",
        [w("vpn", privileged=True)],
        [n("n1"), n("n2", allow_privileged=True)],
        {"vpn": {"n2": 1}},
    ),
    Case(
        "host-network-forbidden-everywhere",
        [w("dns", host_network=True)],
        [n("n1"), n("n2", allow_privileged=True)],
        {"dns": {}},
        reasons={"dns": NO_MATCHING_NODE},
        message_has={"dns": "node policy forbids host network: n1, n2"},
    ),
    Case(
        "bind-mounts-need-a-node-that-allows-them",
        [w("backup", bind_mounts=True)],
        [n("n1", allow_bind_mounts=True), n("n2")],
        {"backup": {"n1": 1}},
    ),
    # --- node loss ---------------------------------------------------------------------------------
    Case(
        "lost-node-work-moves-and-the-lost-copy-goes-in-the-same-plan",
        [w("web", replicas=2)],
        [n("n1", state=NOT_READY), n("n2"), n("n3")],
        {"web": {"n2": 1, "n3": 1}},
        current={"web": {"n1": 1, "n2": 1}},
        ready={"web": {"n2": 1}},
    ),
    Case(
        "lost-node-work-stays-when-nothing-else-fits",
        [w("web", memory=6 * GiB)],
        [n("n1", state=NOT_READY, memory=8 * GiB), n("n2", memory=4 * GiB)],
        {"web": {"n1": 1}},
        current={"web": {"n1": 1}},
        reasons={"web": INSUFFICIENT_CAPACITY},
        stranded={"web": {"n1": 1}},
    ),
    Case(
        "vanished-node-counts-as-lost",
        [w("web")],
        [n("n2")],
        {"web": {"n2": 1}},
        current={"web": {"gone": 1}},
    ),
    Case(
        "nothing-registered",
        [w("web")],
        [],
        {"web": {}},
        reasons={"web": NO_MATCHING_NODE},
        message_has={"web": "no nodes are registered"},
    ),
    # --- scale -------------------------------------------------------------------------------------
    Case(
        "scale-down-trims-the-fullest-node",
        [w("web", replicas=2, spread=False)],
        [n("n1"), n("n2")],
        {"web": {"n1": 1, "n2": 1}},
        current={"web": {"n1": 2, "n2": 1}},
    ),
    Case(
        "scale-to-zero",
        [w("web", replicas=0)],
        [n("n1")],
        {"web": {}},
        current={"web": {"n1": 1}},
    ),
    Case(
        "spread-turned-on-moves-the-stacked-copy-start-first",
        [w("web", replicas=2)],
        [n("n1"), n("n2")],
        {"web": {"n1": 2, "n2": 1}},
        current={"web": {"n1": 2}},
        ready={"web": {"n1": 2}},
        moving={"web": {"n1": 1}},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_placement(case: Case) -> None:
    result = place(
        {s.name: s for s in case.services},
        {v.name: v for v in case.nodes},
        case.current,
        case.ready,
        case.frozen,
    )
    for service, nodes in case.expect.items():
        if service in case.frozen:
            continue
        assert dict(result[service].nodes) == nodes, service
    assert set(result) == {s.name for s in case.services}
    for service in result:
        assert result[service].reason == case.reasons.get(service, ""), (service, result[service].message)
        assert dict(result[service].moving) == case.moving.get(service, {}), service
        assert dict(result[service].stranded) == case.stranded.get(service, {}), service
    for service, text in case.message_has.items():
        assert text in result[service].message, result[service].message


def test_reason_message_names_the_nodes_and_counts() -> None:
    result = place({"web": w("web", replicas=2)}, {"n1": n("n1"), "n2": n("n2", cordon=True)}, {})
    assert result["web"].placed == {"n1": 1}
    assert result["web"].message == (
        "1/2 replicas placed; 0/2 nodes fit (already runs a replica (spread): n1; cordoned: n2)"
    )


def test_leaving_says_why_each_node_is_left() -> None:
    result = place(
        {"web": w("web", replicas=2)},
        {"n1": n("n1", state=NOT_READY), "n2": n("n2", drain=True), "n3": n("n3"), "n4": n("n4")},
        {"web": {"n1": 1, "n2": 1}},
        {"web": {"n2": 1}},
    )
    assert dict(result["web"].leaving) == {"n1": NODE_LOST, "n2": "draining"}
    assert dict(result["web"].placed) == {"n3": 1, "n4": 1}
    assert dict(result["web"].nodes) == {"n2": 1, "n3": 1, "n4": 1}  # n1 dropped, n2 kept until n3/n4 ready
