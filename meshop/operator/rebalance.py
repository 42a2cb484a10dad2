"""Rebalancing: which replicas move back onto a returning (or new) node, and when. Pure, clock passed in.

Placement is sticky (``placement.py``): a node that returns after its work was placed elsewhere gets
nothing until new work arrives. This planner proposes the moves that even the spread out again, and
decides which of them start now. The rule:

* **Balanced** means no move below improves anything. A move takes one replica of service S from node
  A to node B when S runs at least 2 more copies on A than on B, or 1 more while A runs at least 2 more
  replicas (of all services) than B. Each move lowers (Σ per-service copies², Σ per-node replicas²)
  lexicographically, so a sequence of moves always ends and never undoes itself (no ping-pong).
* **Who may move**: a service whose policy (``spec.placement.rebalance``, else the cluster default) is
  ``auto``, or ``manual`` while a ``meshop rebalance`` request is pending; never ``off``, a pinned
  service, a co-location group, a service with a stateful volume (its data stays on its node), or a
  service not settled: every wanted replica Ready, nothing moving or stranded, no move of it in flight
  (so at most one replica of a service moves at a time and never below its ready count).
* **Where to**: a node that is Ready and has been for ``stable_for`` seconds without a flap (a node
  that returns and fails again gets nothing), not cordoned or draining, that satisfies the spec
  (pin, ``nodeSelector``, node policy), has room (memory, cpus, host ports) and, with ``spread``, runs
  no copy of S yet.
* **How fast**: at most ``max_in_flight`` moves at a time in the whole cluster, and ``interval``
  seconds between two starts.

A move itself is start-first and runs through placement's existing machinery (``place(moves=...)``):
the copy on A is treated as a copy on a node being left, the new one is placed on B, and A's copy goes
only once B's is Ready in observed state and routed (``routes/<host>`` lists B), as for a drain.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meshop.operator.placement import constraint_mismatch
from meshop.operator.view import NodeState, NodeView, Workload

OFF, MANUAL, AUTO = "off", "manual", "auto"
POLICIES = (OFF, MANUAL, AUTO)
MAX_PROPOSED = 1000  # a proposal longer than this is cut (each pass re-plans anyway)


@dataclass(frozen=True)
class RebalanceSettings:
    """The cluster-wide part: the controller's ``--rebalance*`` flags."""

    policy: str = MANUAL  # for services that do not set spec.placement.rebalance
    stable_for: float = 60.0  # seconds a node must have been Ready, without a flap, to receive moves
    interval: float = 10.0  # seconds between two move starts, cluster-wide
    max_in_flight: int = 1  # moves running at once, cluster-wide
    timeout: float = 300.0  # a move whose new copy is not Ready and routed by then is abandoned


@dataclass(frozen=True)
class Move:
    service: str
    source: str
    target: str
    reason: str = ""

    def describe(self) -> str:
        return f"{self.service}: {self.source} -> {self.target}"


@dataclass(frozen=True)
class Candidate:
    """One service as the rebalancer sees it after this pass's placement."""

    workload: Workload
    policy: str  # effective: the service's own, else the cluster default
    ready: int = 0  # Ready copies in observed state
    settled: bool = True  # scheduled, nothing moving or stranded
    in_flight: bool = False  # a move of it runs now


@dataclass(frozen=True)
class Decision:
    start: tuple[Move, ...] = ()  # moves to start in this pass
    proposal: tuple[Move, ...] = ()  # every move that would run to reach balance (for status and --dry-run)
    held: Mapping[str, str] = field(default_factory=dict)  # service -> why it is out of balance yet not moved
    waiting: Mapping[str, str] = field(default_factory=dict)  # node -> why it receives no moves yet


def effective_policy(w: Workload, default: str) -> str:
    return w.rebalance if w.rebalance in POLICIES else default


def immovable(c: Candidate) -> str | None:
    """Why ``c`` can never be rebalanced (by its spec), or None."""
    w = c.workload
    if c.policy == OFF:
        return "rebalance: off"
    if w.node is not None:
        return f"pinned to {w.node}"
    if w.group:
        return f"co-located in group {w.group}"
    if w.stateful:
        return "stateful volume"
    return None


NOT_SETTLED = "not settled (every replica Ready, nothing moving or updating)"


def unsettled(c: Candidate) -> str | None:
    """Why ``c`` cannot move *now* (it may later), or None. One wording for every passing state, so the
    record does not change from one pass to the next while a service settles."""
    if c.in_flight:
        return "a move is in flight"
    if not c.settled or c.ready < c.workload.replicas:
        return NOT_SETTLED
    return None


def target_problem(view: NodeView, stable: float | None, settings: RebalanceSettings) -> str | None:
    """Why ``view`` receives no moves, or None (``stable``: seconds Ready without a flap)."""
    if view.state is not NodeState.READY:
        return f"{view.state.value}"
    if view.cordon:
        return "cordoned"
    if view.drain:
        return "draining"
    if stable is None or stable < settings.stable_for:
        return f"not yet stable (Ready for less than {settings.stable_for:g}s)"  # no count: status stays put
    return None


class _Room:
    """Memory, cpus and host ports taken on every node, for the capacity check of a target."""

    def __init__(self, workloads: Mapping[str, Workload], counts: Mapping[str, Mapping[str, int]]) -> None:
        self.memory: Counter[str] = Counter()
        self.cpus: defaultdict[str, float] = defaultdict(float)
        self.ports: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for name, per in counts.items():
            w = workloads.get(name)
            for node, count in per.items():
                if w is not None:
                    self.add(node, w, count)

    def add(self, node: str, w: Workload, count: int) -> None:
        self.memory[node] += w.memory * count
        self.cpus[node] += w.cpus * count
        for port in w.host_ports:
            self.ports[node][port] += count

    def fits(self, view: NodeView, w: Workload) -> bool:
        if view.memory and self.memory[view.name] + w.memory > view.memory:
            return False
        if view.cpus and self.cpus[view.name] + w.cpus > view.cpus + 1e-9:
            return False
        return not any(self.ports[view.name][p] > 0 for p in w.host_ports)


def _best_move(
    name: str,
    w: Workload,
    per: Mapping[str, int],
    totals: Mapping[str, int],
    sources: Iterable[str],
    targets: Mapping[str, NodeView],
    room: _Room,
) -> tuple[tuple[int, int], Move] | None:
    """The most useful move of one service, with its (copy skew, node skew) score, or None."""
    src = max(sources, key=lambda n: (per.get(n, 0), totals.get(n, 0), n), default=None)
    if src is None or per.get(src, 0) <= 0:
        return None
    fitting = [
        v
        for v in targets.values()
        if v.name != src
        and constraint_mismatch(w, v) is None
        and not (w.spread and per.get(v.name, 0))
        and room.fits(v, w)
    ]
    if not fitting:
        return None
    dst = min(fitting, key=lambda v: (per.get(v.name, 0), totals.get(v.name, 0), v.name)).name
    skew = per.get(src, 0) - per.get(dst, 0)
    load = totals.get(src, 0) - totals.get(dst, 0)
    if skew >= 2:
        reason = f"{src} runs {per.get(src, 0)} replicas of {name}, {dst} {per.get(dst, 0)}"
    elif skew == 1 and load >= 2:
        reason = f"{src} runs {totals.get(src, 0)} replicas in all, {dst} {totals.get(dst, 0)}"
    else:
        return None
    return (skew, load), Move(name, src, dst, reason)


def propose(
    candidates: Mapping[str, Candidate],
    nodes: Mapping[str, NodeView],
    counts: Mapping[str, Mapping[str, int]],
    stable: Mapping[str, float],
    settings: RebalanceSettings,
    others: Mapping[str, Workload] | None = None,
) -> Decision:
    """Every move, in order, that would balance ``counts`` (service -> node -> copies, all services);
    ``held`` and ``waiting`` say what keeps an imbalance from moving. Nothing is rate-limited here.

    ``others`` are the workloads of services that are no candidates (they only take up room)."""
    workloads = {**(others or {}), **{n: c.workload for n, c in candidates.items()}}
    sim = {name: Counter({n: c for n, c in per.items() if c > 0}) for name, per in counts.items()}
    totals: Counter[str] = Counter()
    for per in sim.values():
        totals.update(per)
    room = _Room(workloads, sim)
    waiting = {
        n: why for n, v in sorted(nodes.items()) if (why := target_problem(v, stable.get(n), settings)) is not None
    }
    targets = {n: v for n, v in nodes.items() if n not in waiting}
    sources = [n for n, v in nodes.items() if v.state is not NodeState.NOT_READY]
    movers, held = {}, {}
    for name, c in sorted(candidates.items()):
        why = immovable(c) or unsettled(c)
        if why is None:
            movers[name] = c
        elif not immovable(c):
            held[name] = why
    moves: list[Move] = []
    while len(moves) < MAX_PROPOSED:
        best: tuple[tuple[int, int], Move] | None = None
        for name, c in movers.items():
            found = _best_move(name, c.workload, sim[name], totals, sources, targets, room)
            if found is not None and (best is None or found[0] > best[0]):  # ties: the first by name
                best = found
        if best is None:
            break
        move = best[1]
        moves.append(move)
        w = workloads[move.service]
        sim[move.service][move.source] -= 1
        sim[move.service][move.target] += 1
        totals[move.source] -= 1
        totals[move.target] += 1
        room.add(move.source, w, -1)
        room.add(move.target, w, 1)
    held = {name: why for name, why in held.items() if _skewed(sim.get(name, Counter()), nodes)}
    if waiting and settings.stable_for > 0:  # name the unstable nodes that would receive moves
        unwaited = RebalanceSettings(settings.policy, 0.0, settings.interval, settings.max_in_flight, settings.timeout)
        ready = {n: 0.0 for n, v in nodes.items() if v.state is NodeState.READY}
        wanted = {m.target for m in propose(candidates, nodes, counts, ready, unwaited, others).proposal}
        waiting = {n: why for n, why in waiting.items() if n in wanted}
    else:
        waiting = {}
    return Decision(proposal=tuple(moves), held=held, waiting=waiting)


def _skewed(per: Mapping[str, int], nodes: Mapping[str, NodeView]) -> bool:
    ready = [per.get(n, 0) for n, v in nodes.items() if v.state is NodeState.READY and not v.cordon and not v.drain]
    return bool(ready) and max(ready) - min(ready) >= 2


def choose(
    decision: Decision,
    candidates: Mapping[str, Candidate],
    in_flight: int,
    since_last_start: float | None,
    requested: bool,
    settings: RebalanceSettings,
) -> Decision:
    """``decision`` with ``start`` filled: the first proposed move of each service allowed to move now,
    within ``max_in_flight`` (``in_flight`` run now) and at least ``interval`` seconds after the last
    start (``since_last_start``; None: no start yet)."""
    if since_last_start is not None and since_last_start < settings.interval:
        return decision
    room = max(0, settings.max_in_flight - in_flight)
    start: list[Move] = []
    seen: set[str] = set()
    for move in decision.proposal:
        if len(start) >= room:
            break
        policy = candidates[move.service].policy
        if move.service in seen or not (policy == AUTO or (policy == MANUAL and requested)):
            seen.add(move.service)  # a later move of the same service waits for its first
            continue
        seen.add(move.service)
        start.append(move)
    return Decision(tuple(start), decision.proposal, decision.held, decision.waiting)
