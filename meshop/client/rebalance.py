"""``meshop rebalance [--dry-run]`` and the rebalancing line of ``meshop status``: pure formatting over the
controller's ``status/rebalance`` record, plus the one write, the request (``desired/rebalance``).

The controller plans the moves (``meshop.operator.rebalance``) at every pass and records them; the CLI
shows them the way ``meshop diff`` shows a placement (service: before -> after) and, without
``--dry-run``, asks the controller to run the moves of ``manual`` services by writing the request: the
controller carries it out one move at a time, start-first, and records its ModifyIndex as ``handled``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence

from meshop.client.events import iso_time
from meshop.consul.store import KVStore, Listing
from meshop.errors import NotFound
from meshop.model import keys
from meshop.model.codec import RecordError
from meshop.model.records import RebalanceMove, RebalanceStatus, ServiceStatus, loads_json

MANUAL = "manual"  # as meshop.operator.rebalance spells it (not imported: `meshop status` loads this module)


def read_state(store: KVStore) -> tuple[RebalanceStatus, dict[str, dict[str, int]]]:
    """The controller's record and every service's placement (``status/services/<name>``)."""
    listing: Listing = store.list("status/")
    record: RebalanceStatus | None = None
    placements: dict[str, dict[str, int]] = {}
    for entry in listing.entries:
        try:
            if entry.key == keys.STATUS_REBALANCE:
                record = RebalanceStatus.from_dict(loads_json(entry.value))
            elif entry.key.startswith(keys.STATUS_SERVICES):
                status = ServiceStatus.from_dict(loads_json(entry.value))
                placements[entry.key[len(keys.STATUS_SERVICES) :]] = dict(status.placement)
        except RecordError:
            continue  # the controller rewrites an unreadable record at its next pass
    if record is None:
        raise NotFound(
            f"no rebalancing state in {store.full_key(keys.STATUS_REBALANCE)}: no controller of this release has "
            "led yet (or it has not finished a pass)"
        )
    return record, placements


def request(store: KVStore, now: float) -> None:
    """Ask the controller to run the pending moves of ``manual`` services (its ModifyIndex is the request)."""
    store.put(keys.DESIRED_REBALANCE, json.dumps({"requestedAt": iso_time(now)}, sort_keys=True))


def needs_request(record: RebalanceStatus) -> bool:
    """Whether some pending move waits for ``meshop rebalance`` (the others run by themselves)."""
    return any(m.policy == MANUAL for m in record.pending)


def after_moves(before: Mapping[str, int], moves: Sequence[RebalanceMove]) -> dict[str, int]:
    counts = Counter(before)
    for move in moves:
        counts[move.source] -= 1
        counts[move.target] += 1
    return {n: c for n, c in counts.items() if c > 0}


def format_plan(record: RebalanceStatus, placements: Mapping[str, Mapping[str, int]], now: float) -> str:
    """``meshop rebalance``'s text: one line per service to move (before -> after, and why), as
    ``meshop diff`` shows a placement; then moves in flight, held services and waiting nodes."""
    from meshop.operator.plan import format_counts  # only `meshop rebalance` needs the planner's formatting

    out = [f"rebalance (as the controller planned it at its last pass; cluster policy {record.policy}):\n"]
    by_service: dict[str, list[RebalanceMove]] = {}
    for move in record.pending:
        by_service.setdefault(move.service, []).append(move)
    for name, moves in sorted(by_service.items()):
        before = placements.get(name, {})
        steps = "; ".join(f"{m.source} -> {m.target}: {m.reason}" for m in moves)
        how = " (waits for `meshop rebalance`)" if moves[0].policy == MANUAL else ""
        out.append(f"  service/{name}: {format_counts(before)} -> {format_counts(after_moves(before, moves))}{how}\n")
        out.append(f"    {steps}\n")
    if not by_service:
        out.append("  nothing to move: the placement is balanced\n")
    for move in record.moves:
        age = f", started {max(0.0, now - move.started):.0f}s ago" if move.started else ""
        out.append(f"  in flight: service/{move.service} {move.source} -> {move.target} (start-first{age})\n")
    for name, why in sorted(record.held.items()):
        out.append(f"  held: service/{name}: {why}\n")
    for node, why in sorted(record.waiting.items()):
        out.append(f"  waiting: node {node}: {why}\n")
    return "".join(out)


def status_line(record: RebalanceStatus | None) -> str | None:
    """``meshop status``'s line when the placement is out of balance or moves run; None when balanced."""
    if record is None or not (record.pending or record.moves or record.waiting):
        return None
    parts = []
    if record.moves:
        parts.append("rebalancing " + ", ".join(f"{m.service} {m.source} -> {m.target}" for m in record.moves))
    if record.pending:
        shown = ", ".join(f"{m.service} {m.source} -> {m.target}" for m in record.pending[:3])
        more = f" +{len(record.pending) - 3} more" if len(record.pending) > 3 else ""
        head = f"placement out of balance: {len(record.pending)} move(s) pending ({shown}{more})"
        parts.append(head + ("; `meshop rebalance` runs them" if needs_request(record) else ""))
    if record.waiting:
        parts.append("; ".join(f"{n} {why}" for n, why in sorted(record.waiting.items())))
    return "Rebalance: " + "; ".join(parts)
