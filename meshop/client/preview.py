"""``meshop diff``'s placement preview: where each changed Service would run, like ``nomad job plan``.

It reads the cluster once, swaps in the documents being applied, and runs the controller's own pure
planner, so the preview and the controller cannot disagree about the rules. Nodes keep the readiness
the controller last recorded in ``status/nodes/``; a preview waits out no grace period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshop.client.apply import DocumentChange
from meshop.client.cluster import Snapshot, read_snapshot
from meshop.consul.config import ConsulConfig
from meshop.consul.store import Entry, KVStore
from meshop.model import keys
from meshop.model.records import Assignment, Observed
from meshop.operator.desired import (
    ParsedNode,
    node_view,
    parse_node_entry,
    parse_service_entry,
    read_record,
    with_last_valid,
)
from meshop.operator.nodes import NodeHealth, problems_of
from meshop.operator.plan import ClusterState, plan
from meshop.operator.view import NodeState, NodeView
from meshop.operator.volumes import claim_volumes
from meshop.operator.writer import load_assignments

Counts = Mapping[str, int]  # node -> replicas


@dataclass(frozen=True)
class PlacementPreview:
    """One service's placement now and as the controller would plan it with the documents applied."""

    service: str
    before: Counts
    after: Counts
    moving: Counts  # copies kept on nodes being left until their replacements are Ready
    reason: str = ""  # why (part of) it cannot be placed: NoMatchingNode, InsufficientCapacity, ...
    message: str = ""

    @property
    def moves(self) -> bool:
        return dict(self.before) != dict(self.after)


@dataclass(frozen=True)
class Cluster:
    """The read-only inputs of a preview: the status snapshot plus what is assigned and observed."""

    snapshot: Snapshot
    assignments: Mapping[str, Mapping[str, Assignment]]  # service -> node -> record
    observed: Mapping[str, Mapping[str, Observed]]  # service -> node -> record


def read_cluster(config: ConsulConfig) -> Cluster:
    """The status snapshot plus two listings: assignments and observed state."""
    store = KVStore(config)
    snapshot = read_snapshot(config)
    read_observed = read_record(Observed.from_dict)
    observed: dict[str, dict[str, Observed]] = {}
    for entry in store.list(keys.OBSERVED).entries:
        parts = keys.split(entry.key, keys.OBSERVED)
        record = read_observed(entry)  # unreadable: nothing observed, as the controller treats it
        if len(parts) == 2 and record is not None:
            observed.setdefault(parts[1], {})[parts[0]] = record
    return Cluster(snapshot, load_assignments(store), observed)


def preview(
    cluster: Cluster, changes: Sequence[DocumentChange], now: float | None = None, prefix: str = keys.DEFAULT_PREFIX
) -> list[PlacementPreview]:
    """Pure: the placement of every service the changes touch, and of any other whose placement moves."""
    snap = cluster.snapshot
    parsed = dict(snap.services)
    node_docs = dict(snap.node_docs)
    touched: set[str] = set()
    generation = 1 + max(
        (e.modify_index for e in (*snap.service_entries.values(), *snap.node_doc_entries.values())), default=0
    )
    for change in changes:
        if change.action == "unchanged":
            continue
        entry = Entry(change.key, change.value.encode(), modify_index=generation)  # a new generation
        if change.kind == "Service":
            parsed[change.name] = parse_service_entry(change.name, entry, prefix)
            touched.add(change.name)
        elif change.kind == "Node":
            node_docs[change.name] = parse_node_entry(change.name, entry)
    claimed = claim_volumes(parsed)
    services = {n: p.desired or with_last_valid(p, cluster.assignments.get(n, {})) for n, p in claimed.items()}
    known = set(snap.records) | {node for per in cluster.assignments.values() for node in per}
    problems = problems_of(known, snap.records, snap.agents)
    views = {n: _view(n, snap, node_docs, problems[n]) for n in known}
    state = ClusterState(services=services, nodes=views, assignments=cluster.assignments, observed=cluster.observed)
    target = plan(state, snap.now if now is None else now)
    result = []
    for name in sorted(services):
        before = {node: a.replicas for node, a in cluster.assignments.get(name, {}).items()}
        placement = target.placements.get(name)
        if placement is None:  # invalid: keeps what it has
            item = PlacementPreview(name, before, before, {})
        else:
            item = PlacementPreview(
                name, before, dict(placement.placed), dict(placement.moving), placement.reason, placement.message
            )
        if name in touched or item.moves:
            result.append(item)
    return result


def _view(name: str, snap: Snapshot, node_docs: Mapping[str, ParsedNode], problem: str | None) -> NodeView:
    """The node as the controller last judged it (NotReady sticks; otherwise live agent health)."""
    recorded = snap.node_statuses.get(name)
    if recorded is not None and recorded.state == NodeState.NOT_READY.value:
        state = NodeState.NOT_READY
    else:
        state = NodeState.SUSPECT if problem else NodeState.READY
    return node_view(name, snap.records.get(name), node_docs.get(name), NodeHealth(state, problem=problem or ""))
