"""Placement: how many replicas of each service run on which node. A pure function with table tests.

``place(services, nodes, current, ready, frozen)`` returns one ``ServicePlacement`` per service. The rules:

* **Sticky.** A replica stays where it is while its node is not NotReady, not draining, and still satisfies
  the spec (pinned node, ``nodeSelector``, the node's policy, the group's node). A node joining, a node
  being cordoned or running over capacity never moves work.
* **New replicas** go only to Ready, uncordoned, undrained nodes that satisfy the spec, have room (memory
  and cpus requests against capacity minus everything already placed there, 0 = not reported = not
  limited) and no clash of fixed host ports. ``spread`` (the default) allows one replica per node;
  ``spread: false`` lets replicas stack. Among fitting nodes the one running fewest replicas of the
  service wins, then the least loaded by requests (in 5 % steps, so a small request does not turn a
  node away for good), then the one running fewest replicas of all services (so services without
  requests spread evenly instead of piling onto the first node by name), then the first by name.
* **Groups.** Services sharing a ``group`` run on one node: a member's pin, else the node already hosting
  most of the group's replicas (if it still suits every member), else a fresh node with room for all of
  them together.
* **Start-first moves.** Copies on a draining node or on a node that no longer suits the spec stay until
  enough replacements are Ready in observed state (``ready``) to cover the wanted count, then go.
* **Node loss.** Copies on a NotReady node are replaced elsewhere; the lost copy is dropped in the same
  plan that places its replacement (so a returning node gets exactly its current work), and kept only
  while no replacement can be placed. A pinned service never moves: it waits for its node.
* **Stateful services** (a stateful volume: its data lives on the node) never move while their node is
  there: not on drain, cordon or a changed selector (their copy stays, like a pinned one). When the node
  is lost (NotReady) they move only with ``failover: restore-latest`` (the new node restores the latest
  backup first, docs/stateful.md); with ``failover: none`` they wait for the node (``StatefulNodeLost``).
  Placed anew (scaled to 0 and back, deleted and applied again), one goes to its ``home`` first: the
  node its volume lock last named, where its data is, when that node fits. ``relocate`` (``meshop volume
  restore --to-node``) moves one stop-first: its copy elsewhere is dropped in the plan that places it on
  that node (kept while the node cannot take it), and it goes nowhere else.
* ``frozen`` services (invalid documents still running their last valid version) are not planned; they
  only take up room where they run.
* **Rebalancing moves** (``moves``: service -> (source, target), decided by ``rebalance.py``): one copy
  on the source is treated as a copy on a node being left (start-first, as above) and its replacement
  goes to the target, when the target can take it.

When a service cannot get all its replicas the placement says why: ``NoMatchingNode``,
``InsufficientCapacity`` or ``NodeLost`` (its pinned node is down), with a message naming the nodes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from meshop.operator.view import NodeState, NodeView, Workload

NO_MATCHING_NODE = "NoMatchingNode"
INSUFFICIENT_CAPACITY = "InsufficientCapacity"
NODE_LOST = "NodeLost"
STATEFUL_NODE_LOST = "StatefulNodeLost"

_CAPACITY_CAUSES = ("insufficient memory", "insufficient cpus")
_SPREAD_EXCESS = "spread: one replica per node"


@dataclass(frozen=True)
class ServicePlacement:
    """Where one service runs after this plan.

    ``nodes`` is what to assign (every bucket below summed per node). ``placed`` are the replicas on
    nodes that suit the spec; ``moving`` are copies kept on nodes being left until their replacements are
    Ready; ``stranded`` are copies left on NotReady nodes (no replacement fits, or the service is pinned
    there). ``leaving`` says why each left node is being left (for events and status).
    """

    service: str
    wanted: int
    nodes: Mapping[str, int]
    placed: Mapping[str, int] = field(default_factory=dict)
    moving: Mapping[str, int] = field(default_factory=dict)
    stranded: Mapping[str, int] = field(default_factory=dict)
    leaving: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    message: str = ""

    @property
    def placed_count(self) -> int:
        return sum(self.placed.values())

    @property
    def scheduled(self) -> bool:
        return self.placed_count >= self.wanted


@dataclass
class _Work:
    """Scratch state of one service during one ``place`` call."""

    w: Workload
    allowed: frozenset[str] | None = None  # group: the only node(s) it may use
    allowed_why: str = ""
    keep: dict[str, int] = field(default_factory=dict)
    moving: dict[str, int] = field(default_factory=dict)
    moving_kept: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    leaving: dict[str, str] = field(default_factory=dict)
    new: Counter[str] = field(default_factory=Counter)
    prefer: str | None = None  # a rebalancing move's target: new replicas go there first
    reason: str = ""
    message: str = ""

    def here(self, node: str) -> int:
        return self.keep.get(node, 0) + self.new[node]


class _Usage:
    """What is already placed on every node: memory, cpus, fixed host ports."""

    def __init__(self) -> None:
        self.memory: defaultdict[str, int] = defaultdict(int)
        self.cpus: defaultdict[str, float] = defaultdict(float)
        self.ports: defaultdict[str, set[str]] = defaultdict(set)
        self.replicas: defaultdict[str, int] = defaultdict(int)

    def add(self, node: str, w: Workload, count: int) -> None:
        if count <= 0:
            return
        self.memory[node] += w.memory * count
        self.cpus[node] += w.cpus * count
        self.replicas[node] += count
        if w.host_ports:
            self.ports[node].update(w.host_ports)

    def shortage(self, view: NodeView, memory: int, cpus: float) -> str | None:
        if view.memory and self.memory[view.name] + memory > view.memory:
            return "insufficient memory"
        if view.cpus and self.cpus[view.name] + cpus > view.cpus + 1e-9:
            return "insufficient cpus"
        return None

    def load(self, view: NodeView) -> float:
        mem = self.memory[view.name] / view.memory if view.memory else 0.0
        cpu = self.cpus[view.name] / view.cpus if view.cpus else 0.0
        return max(mem, cpu)

    def rank(self, view: NodeView) -> tuple[int, int, float]:
        """Lower is emptier: requests in 5 % steps, then replicas of every service, then exact requests."""
        load = self.load(view)
        return (round(load * 20), self.replicas[view.name], load)


def place(
    services: Mapping[str, Workload],
    nodes: Mapping[str, NodeView],
    current: Mapping[str, Mapping[str, int]],
    ready: Mapping[str, Mapping[str, int]] | None = None,
    frozen: Mapping[str, tuple[Workload, Mapping[str, int]]] | None = None,
    moves: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, ServicePlacement]:
    """Plan every service of ``services`` (name -> workload) onto ``nodes``.

    ``current`` is what is assigned now (service -> node -> replicas), ``ready`` how many of those copies
    are Ready in observed state, ``frozen`` the services that keep exactly what they have, ``moves`` the
    rebalancing moves in flight (service -> (source, target)).
    """
    moves = moves or {}
    ready = ready or {}
    usage = _Usage()
    for workload, placement in (frozen or {}).values():
        for node, count in placement.items():
            usage.add(node, workload, count)

    groups: defaultdict[str, list[Workload]] = defaultdict(list)
    for name in sorted(services):
        if services[name].group:
            groups[services[name].group or ""].append(services[name])

    works: dict[str, _Work] = {}
    pending_groups: dict[str, list[_Work]] = {}
    group_failures: dict[str, tuple[str, str]] = {}
    for group, members in sorted(groups.items()):
        node, reason, message = _sticky_group_node(group, members, nodes, current)
        for member in members:
            work = _Work(replace(member, spread=False))
            if reason:
                work.allowed = frozenset()
            elif node is not None and member.node is None:
                work.allowed, work.allowed_why = frozenset({node}), f"not the node of group {group}"
            elif node is None:
                work.allowed, work.allowed_why = frozenset(), f"not the node of group {group}"
            if member.node is None and node is not None and any(m.node for m in members):
                work.w = replace(work.w, node=node)  # a member's pin binds the whole group
            works[member.name] = work
        if reason:
            group_failures[group] = (reason, message)
        elif node is None:
            pending_groups[group] = [works[m.name] for m in members]
    for name in sorted(services):
        if name not in works:
            works[name] = _Work(services[name])

    for name in sorted(works):
        _classify(works[name], nodes, current.get(name, {}), ready.get(name, {}), usage, moves.get(name))

    for group, members in sorted(pending_groups.items()):
        _place_new_group(group, members, nodes, usage)
    for group, (reason, message) in group_failures.items():
        for work in works.values():
            if work.w.group == group:
                work.reason, work.message = reason, message
    for name in sorted(works):
        work = works[name]
        if not work.reason and not (work.w.group and work.w.group in pending_groups):
            _place_new(work, nodes, usage)

    return {name: _finish(work) for name, work in works.items()}


def constraint_mismatch(w: Workload, view: NodeView) -> str | None:
    """Why ``view`` cannot run ``w`` at all, whatever is placed there (None: it can)."""
    if w.node is not None and view.name != w.node:
        return "not the pinned node"
    for key, value in w.node_selector.items():
        if view.labels.get(key) != value:
            return "nodeSelector mismatch"
    if w.privileged and not view.allow_privileged:
        return "node policy forbids privileged"
    if w.host_network and not view.allow_host_network:
        return "node policy forbids host network"
    if w.bind_mounts and not view.allow_bind_mounts:
        return "node policy forbids bind mounts"
    return None


def _sticky_group_node(
    group: str, members: list[Workload], nodes: Mapping[str, NodeView], current: Mapping[str, Mapping[str, int]]
) -> tuple[str | None, str, str]:
    """The group's node if it is already decided (a pin, or where it runs and still may): (node, "", "").
    (None, "", "") when a fresh node must be found; (None, reason, message) when the group cannot run."""
    pins = sorted({m.node for m in members if m.node})
    if len(pins) > 1:
        return None, NO_MATCHING_NODE, f"group {group}: members are pinned to different nodes ({', '.join(pins)})"
    if pins:
        return pins[0], "", ""
    hosted: Counter[str] = Counter()
    for member in members:
        for node, count in current.get(member.name, {}).items():
            hosted[node] += min(count, member.replicas)  # copies being scaled away do not anchor the group
    for node in sorted((n for n in hosted if hosted[n] > 0), key=lambda n: (-hosted[n], n)):
        view = nodes.get(node)
        if view is None or view.state is NodeState.NOT_READY or view.drain:
            continue
        if all(constraint_mismatch(m, view) is None for m in members):
            return node, "", ""
    return None, "", ""


def _classify(
    work: _Work,
    nodes: Mapping[str, NodeView],
    current: Mapping[str, int],
    ready: Mapping[str, int],
    usage: _Usage,
    move: tuple[str, str] | None = None,
) -> None:
    """Sort current copies into keep / moving / lost / waiting; settle moving copies; book their room."""
    w = work.w
    for node, count in sorted(current.items()):
        if count <= 0:
            continue
        view = nodes.get(node)
        if view is None or view.state is NodeState.NOT_READY:
            if w.node == node:
                work.waiting[node] = count  # pinned: wait for the node, never move
            elif w.failover == "none":
                work.waiting[node] = count  # its data is there: wait for the node
                work.reason = STATEFUL_NODE_LOST
                work.message = (
                    f"stateful service waits for node {node} (NotReady), where its volume is: failover is "
                    "none; with backups, failover: restore-latest moves it (docs/stateful.md)"
                )
            else:
                work.lost[node] = count
                work.leaving[node] = NODE_LOST
            continue
        if (target := _relocation(w, nodes)) is not None and node != target:
            work.lost[node] = count  # stop first: dropped in the plan that places it on the target
            work.leaving[node] = f"moving to {target} (meshop volume restore --to-node)"
            continue
        if w.failover is not None:
            work.keep[node] = count  # stateful: its data is on this node; only a lost node moves it
            continue
        why = "draining" if view.drain else constraint_mismatch(w, view)
        if why is None and work.allowed is not None and node not in work.allowed:
            why = work.allowed_why or "not the group's node"
        if why is not None:
            work.moving[node] = count
            work.leaving[node] = why
        elif w.spread and count > 1:
            work.keep[node] = 1
            work.moving[node] = count - 1
            work.leaving[node] = _SPREAD_EXCESS
        else:
            work.keep[node] = count

    if move is not None and work.keep.get(move[0], 0) > 0 and move[1] in nodes:
        source, work.prefer = move
        work.keep[source] -= 1
        if not work.keep[source]:
            del work.keep[source]
        work.moving[source] = work.moving.get(source, 0) + 1
        work.leaving[source] = f"rebalancing to {move[1]}"

    excess = sum(work.keep.values()) - w.replicas
    while excess > 0:  # scale down: trim the fullest, least ready node first
        node = max(work.keep, key=lambda n: (work.keep[n], -ready.get(n, 0), n))
        work.keep[node] -= 1
        if not work.keep[node]:
            del work.keep[node]
            if work.leaving.get(node) == _SPREAD_EXCESS:  # scaling away the node's copy: its extras go too
                del work.moving[node], work.leaving[node]
        excess -= 1

    ready_kept = sum(min(ready.get(node, 0), count) for node, count in work.keep.items())
    still_needed = min(sum(work.moving.values()), max(0, w.replicas - ready_kept))
    for node in sorted(work.moving, key=lambda n: (-ready.get(n, 0), n)):
        take = min(work.moving[node], still_needed)
        if take:
            work.moving_kept[node] = take
            still_needed -= take

    for bucket in (work.keep, work.moving_kept, work.waiting):
        for node, count in bucket.items():
            usage.add(node, w, count)


def _rejection(work: _Work, view: NodeView, usage: _Usage) -> str | None:
    """Why ``view`` cannot take one more replica of ``work`` (capacity aside); None if it can."""
    w = work.w
    if view.state is NodeState.NOT_READY:
        return "not ready"
    if view.state is NodeState.SUSPECT:
        return "unhealthy (within grace period)"
    if view.cordon:
        return "cordoned"
    if view.drain:
        return "draining"
    if work.allowed is not None and view.name not in work.allowed:
        return work.allowed_why or "not the group's node"
    mismatch = constraint_mismatch(w, view)
    if mismatch:
        return mismatch
    if w.spread and work.here(view.name):
        return "already runs a replica (spread)"
    if w.host_ports & usage.ports[view.name]:
        return "host port in use"
    return None


def _relocation(w: Workload, nodes: Mapping[str, NodeView]) -> str | None:
    """The node ``meshop volume restore --to-node`` moves ``w`` to, while that node is known and not lost
    (a lost target must not strand the service: failover and the usual rules apply again)."""
    view = nodes.get(w.relocate) if w.relocate is not None else None
    return view.name if view is not None and view.state is not NodeState.NOT_READY else None


def _place_new(work: _Work, nodes: Mapping[str, NodeView], usage: _Usage) -> None:
    w = work.w
    need = w.replicas - sum(work.keep.values()) - sum(work.new.values())
    pin = _relocation(w, nodes) or w.node
    views = [nodes[pin]] if pin is not None and pin in nodes else list(nodes.values())
    for _ in range(max(0, need)):
        best: NodeView | None = None
        best_key: tuple[int, bool, tuple[int, int, float], str] | None = None
        target = nodes.get(work.prefer) if work.prefer else None
        if target is not None and not _rejection(work, target, usage) and not usage.shortage(target, w.memory, w.cpus):
            work.new[target.name] += 1
            usage.add(target.name, w, 1)
            work.prefer = None  # one replacement per move: any other new replica is placed as usual
            continue
        for view in views:
            if _rejection(work, view, usage) or usage.shortage(view, w.memory, w.cpus):
                continue
            # a stateful service placed anew (scaled 0 -> 1, applied again) goes back to its data first
            key = (work.here(view.name), view.name != w.home, usage.rank(view), view.name)
            if best_key is None or key < best_key:
                best, best_key = view, key
        if best is None:
            work.reason, work.message = _why_unplaceable(work, nodes, usage)
            return
        work.new[best.name] += 1
        usage.add(best.name, w, 1)


def _place_new_group(group: str, members: list[_Work], nodes: Mapping[str, NodeView], usage: _Usage) -> None:
    """Find one node with room for every member of a group that runs nowhere suitable yet."""
    memory = sum(m.w.memory * m.w.replicas for m in members)
    cpus = sum(m.w.cpus * m.w.replicas for m in members)
    ports = [p for m in members for p in m.w.host_ports]
    causes: dict[str, list[str]] = defaultdict(list)
    best: NodeView | None = None
    best_key: tuple[tuple[int, int, float], str] | None = None
    for view in nodes.values():
        probe = [_Work(m.w) for m in members]
        cause = next((c for c in (_rejection(p, view, usage) for p in probe) if c), None)
        if cause is None and len(ports) != len(set(ports)):
            cause = "members bind the same host port"
        cause = cause or usage.shortage(view, memory, cpus)
        if cause:
            causes[cause].append(view.name)
            continue
        key = (usage.rank(view), view.name)
        if best_key is None or key < best_key:
            best, best_key = view, key
    if best is None:
        reason = _reason_for(causes)
        message = f"group {group}: no node fits all {len(members)} members together; {_summary(causes, len(nodes))}"
        for member in members:
            member.reason, member.message = reason, message
        return
    for member in members:  # place them now, before any other service can take the room
        member.allowed = frozenset({best.name})
        _place_new(member, nodes, usage)


def _why_unplaceable(work: _Work, nodes: Mapping[str, NodeView], usage: _Usage) -> tuple[str, str]:
    w = work.w
    placed = sum(work.keep.values()) + sum(work.new.values())
    head = f"{placed}/{w.replicas} replicas placed"
    if w.node is not None:
        view = nodes.get(w.node)
        if view is None:
            return NO_MATCHING_NODE, f"{head}; pinned node {w.node} is not registered"
        if view.state is not NodeState.READY:
            state = "NotReady" if view.state is NodeState.NOT_READY else "unhealthy"
            return NODE_LOST, f"{head}; waiting for pinned node {w.node} ({state})"
    causes: dict[str, list[str]] = defaultdict(list)
    candidates = [nodes[w.node]] if w.node is not None else list(nodes.values())
    for view in candidates:
        cause = _rejection(work, view, usage) or usage.shortage(view, w.memory, w.cpus)
        causes[cause or "no room"].append(view.name)
    if not nodes:
        return NO_MATCHING_NODE, f"{head}; no nodes are registered"
    return _reason_for(causes), f"{head}; {_summary(causes, len(candidates))}"


def _reason_for(causes: Mapping[str, list[str]]) -> str:
    return INSUFFICIENT_CAPACITY if any(c in _CAPACITY_CAUSES for c in causes) else NO_MATCHING_NODE


def _summary(causes: Mapping[str, list[str]], total: int) -> str:
    parts = []
    for cause in sorted(causes, key=lambda c: (-len(causes[c]), c)):
        names = sorted(causes[cause])
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
        parts.append(f"{cause}: {shown}")
    return f"0/{total} nodes fit ({'; '.join(parts)})"


def _fill(total: int, available: Mapping[str, int], order: Iterable[str]) -> dict[str, int]:
    taken: dict[str, int] = {}
    for node in order:
        if total <= 0:
            break
        take = min(available[node], total)
        if take:
            taken[node] = take
            total -= take
    return taken


def _finish(work: _Work) -> ServicePlacement:
    placed: Counter[str] = Counter(work.keep)
    placed.update(work.new)
    shortfall = max(0, work.w.replicas - sum(placed.values()))
    lost_kept = _fill(
        min(sum(work.lost.values()), max(0, shortfall - sum(work.moving_kept.values()))), work.lost, sorted(work.lost)
    )
    nodes: Counter[str] = Counter(placed)
    for bucket in (work.moving_kept, lost_kept, work.waiting):
        nodes.update(bucket)
    stranded = {**lost_kept, **work.waiting}
    return ServicePlacement(
        service=work.w.name,
        wanted=work.w.replicas,
        nodes={n: c for n, c in sorted(nodes.items()) if c > 0},
        placed={n: c for n, c in sorted(placed.items()) if c > 0},
        moving=dict(sorted(work.moving_kept.items())),
        stranded=dict(sorted(stranded.items())),
        leaving=dict(sorted(work.leaving.items())),
        reason=work.reason if shortfall else "",
        message=work.message if shortfall else "",
    )
