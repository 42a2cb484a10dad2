"""The rebalancing step of a controller pass (pure): which moves continue, end or start, and what to record.

``plan.plan`` calls it around placement. A move in flight (``status/rebalance``) goes on while its
service is still valid and movable, its source still runs a copy, its target is still Ready (and not
cordoned or draining) and it has not run past ``timeout``; otherwise it is abandoned, and placement
trims the extra copy as for any scale-down (the least ready first). The target's copy counts as Ready
for the move only once ``routes/<host>`` (as KV holds it, so the gateway was told) lists the target: the
source's copy is removed in the pass after that, never before. A move is done in the pass whose
placement drops the source's copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshop.model.records import RebalanceMove, RebalanceStatus, RouteRecord
from meshop.operator.placement import ServicePlacement
from meshop.operator.rebalance import (
    AUTO,
    MANUAL,
    Candidate,
    Move,
    RebalanceSettings,
    choose,
    effective_policy,
    immovable,
    propose,
)
from meshop.operator.view import DesiredService, NodeState, NodeView, Workload


@dataclass(frozen=True)
class RebalanceInput:
    """What the controller knows beyond KV documents: its settings, clocks and the request."""

    settings: RebalanceSettings = field(default_factory=RebalanceSettings)
    status: RebalanceStatus = field(default_factory=RebalanceStatus)  # as KV holds it
    stable: Mapping[str, float] = field(default_factory=dict)  # node -> seconds Ready without a flap
    request: int = 0  # ModifyIndex of desired/rebalance (0: none)
    since_last_start: float | None = None  # seconds since this controller last started a move
    expired: frozenset[str] = frozenset()  # services whose move ran past the timeout


@dataclass(frozen=True)
class Outcome:
    status: RebalanceStatus
    started: tuple[Move, ...] = ()
    done: tuple[Move, ...] = ()
    abandoned: tuple[tuple[Move, str], ...] = ()
    due: bool = False  # a pending move may start once the rate limit allows it: pass again soon
    wake_in: float | None = None  # seconds until a node waiting for moves is stable: pass again then


def _move(record: RebalanceMove) -> Move:
    return Move(record.service, record.source, record.target, record.reason)


def active_moves(
    given: RebalanceInput,
    workloads: Mapping[str, Workload],
    nodes: Mapping[str, NodeView],
    current: Mapping[str, Mapping[str, int]],
) -> tuple[dict[str, Move], list[tuple[Move, str]]]:
    """The recorded moves that go on (service -> move), and the abandoned ones with why."""
    active: dict[str, Move] = {}
    abandoned: list[tuple[Move, str]] = []
    for record in given.status.moves:
        move = _move(record)
        w = workloads.get(move.service)
        target = nodes.get(move.target)
        why = None
        if w is None:
            why = "service deleted or invalid"
        elif move.service in active:
            why = "another move of the service is in flight"
        elif (stuck := immovable(Candidate(w, effective_policy(w, given.settings.policy)))) is not None:
            why = stuck
        elif current.get(move.service, {}).get(move.source, 0) <= 0:
            why = f"{move.source} no longer runs a copy"
        elif target is None or target.state is not NodeState.READY or target.cordon or target.drain:
            why = f"{move.target} can no longer take it"
        elif move.service in given.expired:
            why = f"the new copy was not Ready and routed within {given.settings.timeout:g}s"
        if why is None:
            active[move.service] = move
        else:
            abandoned.append((move, why))
    return active, abandoned


def routed_ready(
    ready: Mapping[str, Mapping[str, int]],
    active: Mapping[str, Move],
    services: Mapping[str, DesiredService],
    routes: Mapping[str, RouteRecord],
) -> dict[str, dict[str, int]]:
    """``ready`` where a move's target counts only once the route record in KV lists it as an upstream."""
    result = {name: dict(per) for name, per in ready.items()}
    for name, move in active.items():
        service = services.get(name)
        if service is None or service.route is None:
            continue
        record = routes.get(service.route.host)
        listed = record is not None and record.service == name and any(u.node == move.target for u in record.upstreams)
        if not listed and move.target in result.get(name, {}):
            result[name][move.target] = 0
    return result


def completed(active: Mapping[str, Move], placements: Mapping[str, ServicePlacement]) -> dict[str, Move]:
    """The moves this pass's placement finishes: the source's copy goes, the target's is placed."""
    done = {}
    for name, move in active.items():
        p = placements.get(name)
        if p is not None and not p.moving.get(move.source) and move.target in p.placed:
            done[name] = move
    return done


@dataclass(frozen=True)
class PassView:
    """What this pass planned and read, as the rebalancing step needs it."""

    workloads: Mapping[str, Workload]  # valid services
    frozen: Mapping[str, tuple[Workload, Mapping[str, int]]]  # invalid services: they only take room
    placements: Mapping[str, ServicePlacement]  # this pass's, with the moves in flight
    current: Mapping[str, Mapping[str, int]]  # assigned now: service -> node -> copies
    ready: Mapping[str, Mapping[str, int]]  # Ready copies in observed state
    nodes: Mapping[str, NodeView]
    updating: frozenset[str] = frozenset()  # services with a copy assigned an older spec: a rollout runs


@dataclass(frozen=True)
class Moves:
    """The recorded moves after this pass's placement: going on, finished in it, abandoned (with why)."""

    active: Mapping[str, Move]
    done: Mapping[str, Move]
    abandoned: tuple[tuple[Move, str], ...] = ()


def decide(given: RebalanceInput, view: PassView, moves: Moves, now: float) -> Outcome:
    """The moves to start now and the record to keep (``status/rebalance``); ``now`` is the wall clock,
    stamped on a started move for people."""
    settings = given.settings
    workloads, placements, ready, done = view.workloads, view.placements, view.ready, moves.done
    still = {n: m for n, m in moves.active.items() if n not in done}
    candidates = {}
    counts: dict[str, dict[str, int]] = {n: dict(c) for n, (_, c) in view.frozen.items()}
    others = {n: w for n, (w, _) in view.frozen.items()}
    for name, w in workloads.items():
        p = placements[name]
        per = dict(p.nodes)
        if name in still:  # as it will be once the move is over
            source = still[name].source
            per[source] = per.get(source, 0) - 1
        counts[name] = {n: c for n, c in per.items() if c > 0}
        settled = p.scheduled and not p.moving and not p.stranded and name not in view.updating
        candidates[name] = Candidate(
            w,
            effective_policy(w, settings.policy),
            ready=sum(ready.get(name, {}).values()),
            settled=settled and name not in done,
            in_flight=name in still,
        )
    requested = given.request > given.status.handled
    decision = propose(candidates, view.nodes, counts, given.stable, settings, others)
    decision = choose(decision, candidates, len(still), given.since_last_start, requested, settings)
    started = {m.service: m for m in decision.start}
    manual_left = any(candidates[m.service].policy == MANUAL for m in decision.proposal)
    quiet = not (still or started or done)  # a finished move may make room for the next: wait for a quiet pass
    handled = given.request if requested and quiet and not manual_left else given.status.handled
    previous = {m.service: m.started for m in given.status.moves}
    policy = {n: c.policy for n, c in candidates.items()}
    running = {n: _record(m, previous.get(n, 0.0), policy[n]) for n, m in still.items()}
    running.update({n: _record(m, now, policy[n]) for n, m in started.items()})
    status = RebalanceStatus(
        policy=settings.policy,  # type: ignore[arg-type]  # one of POLICIES: the controller's flag
        moves=tuple(running[n] for n in sorted(running)),
        pending=tuple(_record(m, 0.0, policy[m.service]) for m in decision.proposal if m not in decision.start),
        held=dict(decision.held),
        waiting=dict(decision.waiting),
        handled=handled,
    )
    due = any(candidates[m.service].policy == AUTO or requested for m in decision.proposal)
    waits = [settings.stable_for - given.stable.get(n, 0.0) for n in decision.waiting if n in given.stable]
    wake_in = max(0.0, min(waits)) if waits else None  # a node not Ready at all wakes a pass when it is
    return Outcome(status, decision.start, tuple(done[n] for n in sorted(done)), moves.abandoned, due, wake_in)


def _record(move: Move, started: float, policy: str) -> RebalanceMove:
    return RebalanceMove(move.service, move.source, move.target, move.reason, started, policy)
