"""Node readiness over time: pure, with the clocks passed in.

A node is healthy while its agent's record exists in ``nodes/`` and its ``meshop-agent-<node>`` health (the TTL
check plus the Consul node's own checks) passes. An unhealthy node is SUSPECT (keeps its work, gets no
new work) until it has been unhealthy for the grace period, then NOT_READY (its movable work is placed
elsewhere). ``assess`` returns the new states and the NodeLost / NodeReady transitions to report;
``node_statuses`` turns them into the ``status/nodes/<n>`` records ``meshop status`` shows.

**A lost node comes back by reporting back.** A NOT_READY node turns READY again once its ``nodes/<n>``
record was written after the node turned unhealthy (its ModifyIndex moved past the one noted then). Its
agent writes the record only after a reconcile pass that acted (agent/cluster/presence.py), so the
node's stale copies are gone first. Health alone is not enough: when a powered-off node boots, its
Consul agent rejoins and the catalog may show the agent's check passing from before the loss until that
Consul agent syncs, before meshop's agent has even started. A node that looks healthy for a whole
grace period without reporting back (an agent too old to, or gossip that flapped while the agent never
lost Consul) is READY then all the same, so nothing is stuck NOT_READY for good.

Two clocks, never mixed: the grace period is measured on the monotonic clock (``now``), which an NTP step
cannot move, so a step of the wall clock never marks a node NotReady or keeps one Suspect longer. The
wall clock (``wall``) only stamps when a node was first seen unhealthy, for the record people read. A
wall time read back from a record (a previous leader's ``status/nodes/<n>`` ``since``) is only ever
carried forward for display, never subtracted from a clock to decide anything: a freshly elected
controller measures a full grace period of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from meshop.model.records import NodeStatus
from meshop.operator.view import NodeState, NodeView


@dataclass(frozen=True)
class NodeHealth:
    state: NodeState
    unhealthy_since: float | None = None  # monotonic: when first seen unhealthy (the grace period counts from it)
    problem: str = ""  # why the node is unhealthy: "agent check critical", "node record missing", ...
    unhealthy_at: float | None = None  # the same moment on the wall clock: for ``status/nodes/<n>`` only
    ready_since: float | None = None  # monotonic: when it last became Ready (any unhealthy pass resets it)
    record_index: int = 0  # the node record's ModifyIndex when the node was first seen unhealthy
    back_since: float | None = None  # NOT_READY, healthy again but not reported back: since when (monotonic)


@dataclass(frozen=True)
class Transition:
    node: str
    kind: str  # NodeLost | NodeReady
    message: str


def assess(
    previous: Mapping[str, NodeHealth],
    problems: Mapping[str, str | None],
    *,
    now: float,
    wall: float,
    grace: float,
    indexes: Mapping[str, int] | None = None,
) -> tuple[dict[str, NodeHealth], list[Transition]]:
    """New health for every node in ``problems`` (node -> None when healthy, else what is wrong).

    ``now`` is monotonic, ``wall`` the wall clock at the same moment. Nodes missing from ``problems`` are
    forgotten. The grace period counts from the first pass that saw the node unhealthy (a freshly
    started controller therefore waits a full grace period too). ``indexes``: node -> its record's
    ModifyIndex (None: not tracked, health alone decides).
    """
    result: dict[str, NodeHealth] = {}
    transitions: list[Transition] = []
    for node in sorted(problems):
        problem = problems[node]
        before = previous.get(node)
        index = (indexes or {}).get(node, 0)
        if problem is None and before is not None and _not_reported(before, index, indexes):
            back = now if before.back_since is None else before.back_since
            if now - back < grace:
                result[node] = replace(before, problem=NOT_REPORTED, back_since=back)
                continue
        if problem is None:
            steady = before is not None and before.state is NodeState.READY and before.ready_since is not None
            since = before.ready_since if steady and before is not None and before.ready_since is not None else now
            result[node] = NodeHealth(NodeState.READY, ready_since=since)
            if before is not None and before.state is NodeState.NOT_READY:
                transitions.append(Transition(node, "NodeReady", f"node {node} is Ready again"))
            continue
        seen = before is not None and before.unhealthy_since is not None
        since = before.unhealthy_since if seen and before.unhealthy_since is not None else now
        at = before.unhealthy_at if seen and before.unhealthy_at is not None else wall
        noted = before.record_index if seen and before is not None else index
        if now - since >= grace:
            result[node] = NodeHealth(NodeState.NOT_READY, since, problem, at, record_index=noted)
            if before is None or before.state is not NodeState.NOT_READY:
                transitions.append(
                    Transition(node, "NodeLost", f"node {node} is NotReady: {problem} for {now - since:.0f}s")
                )
        else:
            result[node] = NodeHealth(NodeState.SUSPECT, since, problem, at, record_index=noted)
    return result, transitions


NOT_REPORTED = "healthy again, but its agent has not reported back (no node record written since it was lost)"


def _not_reported(before: NodeHealth, index: int, indexes: Mapping[str, int] | None) -> bool:
    """A lost node whose record was not written since it turned unhealthy (``indexes`` None: not tracked)."""
    return before.state is NodeState.NOT_READY and indexes is not None and index <= before.record_index


def stable_for(health: Mapping[str, NodeHealth], now: float) -> dict[str, float]:
    """node -> seconds it has been Ready without an unhealthy pass (``now`` monotonic), for rebalancing:
    a node that flaps starts again from 0, and a freshly started controller counts from its first pass."""
    return {
        n: now - h.ready_since for n, h in health.items() if h.state is NodeState.READY and h.ready_since is not None
    }


def next_deadline(health: Mapping[str, NodeHealth], now: float, grace: float) -> float | None:
    """Seconds until the first SUSPECT node's grace period ends, or a node back but not reported back is
    taken as Ready anyway (when a pass must run), or None; ``now`` is monotonic, as ``assess``'s."""
    waits = [
        max(0.0, h.unhealthy_since + grace - now)
        for h in health.values()
        if h.state is NodeState.SUSPECT and h.unhealthy_since is not None
    ]
    waits += [max(0.0, h.back_since + grace - now) for h in health.values() if h.back_since is not None]
    return min(waits) if waits else None


def problems_of(
    known: Iterable[str], records: Mapping[str, object], agent_status: Mapping[str, str]
) -> dict[str, str | None]:
    """What is wrong with each known node: no record, no agent registration, or a non-passing check.

    ``agent_status`` maps node -> the worst status of its agent's checks (passing | warning | critical).
    """
    result: dict[str, str | None] = {}
    for node in known:
        status = agent_status.get(node)
        if node not in records:
            result[node] = "node record missing"
        elif status is None:
            result[node] = "agent not registered"
        elif status not in ("passing", "warning"):
            result[node] = f"agent check {status}"
        else:
            result[node] = None
    return result


def node_statuses(
    nodes: Mapping[str, NodeView], previous: Mapping[str, NodeStatus], now: float
) -> dict[str, NodeStatus]:
    """One record per node; unchanged while the node's state and problem are, so an idle pass writes none.

    ``since`` is when a Ready node became Ready, or when an unhealthy node was first seen unhealthy; wall
    times (``now`` is the wall clock here), read by people only.
    """
    result: dict[str, NodeStatus] = {}
    for name, view in sorted(nodes.items()):
        before = previous.get(name)
        since = before.since if before is not None and before.state == view.state.value else now
        if view.state is not NodeState.READY and view.unhealthy_since is not None:
            since = view.unhealthy_since
        result[name] = NodeStatus(name, view.state.value, since, view.problem)
    return result


def agent_status(instances: Iterable[tuple[str, str]]) -> dict[str, str]:
    """node -> the worst status (passing < warning < critical) among its agent's health instances."""
    severity = {"passing": 0, "warning": 1, "critical": 2}
    result: dict[str, str] = {}
    for node, status in instances:
        before = result.get(node)
        if before is None or severity.get(status, 2) > severity.get(before, 2):
            result[node] = status
    return result
