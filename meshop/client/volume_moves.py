"""``meshop volume restore SERVICE --to-node N``: move a stateful service to N from one of its backups.

The operator writes ``requests/<service>/move`` (checked here first: a clear error for an unknown or
not-Ready node, a snapshot no node reported, a service that is not stateful or has no backup); the
controller then places the service on N only, stop-first (its copy elsewhere stops and releases its
volume lock before N can take it), and N's agent restores the snapshot into a fresh volume before the
first start, then deletes the request. Read-only except ``request_move``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from meshop.client.volumes import _spec_of, backed_up_volumes, poll, read_backups
from meshop.consul.store import KVStore
from meshop.errors import DocumentError, NotFound
from meshop.model import keys
from meshop.model.codec import RecordError
from meshop.model.moves import SNAPSHOT_REF, parse_move
from meshop.model.names import is_dns_label
from meshop.model.records import MoveRequest, NodeStatus, Observed, ServiceStatus, dumps, loads_json

FAILED = frozenset({"RestoreFailed", "StaleVolume", "VolumeOnOtherNode"})  # the restorer's fence notes


R = TypeVar("R", NodeStatus, ServiceStatus, Observed)


def _record(store: KVStore, key: str, kind: type[R]) -> R | None:
    """The record at ``key``, or None: absent, or not one the strict codec reads."""
    entry = store.get(key)
    if entry is None:
        return None
    try:
        return kind.from_dict(loads_json(entry.value))
    except (RecordError, ValueError):
        return None


def known_snapshot(store: KVStore, service: str, snapshot: str) -> bool:
    """Did a node report ``snapshot`` (an id or its 8+ digit prefix) among ``service``'s snapshots?"""
    for (_, name), record in read_backups(store).items():
        if name != service:
            continue
        for volume in record.volumes:
            if any(s.id.startswith(snapshot) or snapshot.startswith(s.id) for s in volume.snapshots):
                return True
    return False


def request_move(store: KVStore, service: str, node: str, snapshot: str, now: float) -> str:
    """Write ``requests/<service>/move`` after checking everything a person can get wrong; its id."""
    if not is_dns_label(service):
        raise NotFound(f"service {service!r} not found (not a service name)")
    if not SNAPSHOT_REF.fullmatch(snapshot):
        raise DocumentError(f"--snapshot {snapshot!r}: 'latest' or a snapshot id (8 to 64 hex digits)")
    spec = _spec_of(store, service)
    if not spec.stateful_volumes:
        raise DocumentError(f"service/{service} has no stateful volume: nothing to restore (spec.volumes[].stateful)")
    volumes = backed_up_volumes(spec)
    if not volumes:
        raise DocumentError(f"service/{service} has no stateful volume with a backup (spec.volumes[].stateful.backup)")
    if snapshot != "latest" and len(volumes) > 1:
        raise DocumentError(f"a snapshot id names one volume's snapshot; service/{service} has {', '.join(volumes)}")
    if not is_dns_label(node) or store.get(keys.node(node)) is None:
        raise NotFound(f"--to-node {node!r}: no such node (see `meshop node ls`)")
    verdict = _record(store, keys.node_status(node), NodeStatus)
    if verdict is None or verdict.state != "Ready":
        state = verdict.state if verdict is not None else "not yet judged by the controller"
        raise DocumentError(f"--to-node {node}: the node is {state}, not Ready")
    if spec.placement.node is not None and spec.placement.node != node:
        raise DocumentError(f"service/{service} is pinned to node {spec.placement.node} (placement.node)")
    status = _record(store, keys.service_status(service), ServiceStatus)
    if status is not None and dict(status.placement) == {node: 1}:
        raise DocumentError(f"service/{service} already runs on {node}: restore in place (without --to-node)")
    if snapshot != "latest" and not known_snapshot(store, service, snapshot):
        raise NotFound(f"--snapshot {snapshot}: not among service/{service}'s snapshots (`meshop volume snapshots`)")
    ident = f"{int(now)}-{secrets.token_hex(4)}"
    store.put(keys.move_request(service), dumps(MoveRequest(ident, node, snapshot, now)))
    return ident


@dataclass(frozen=True)
class MoveOutcome:
    ok: bool
    message: str


def wait_for_move(
    store: KVStore,
    service: str,
    ident: str,
    node: str,
    timeout: float,
    *,
    mono: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> MoveOutcome | None:
    """Poll until ``node`` restored and runs ``service`` (a ready copy there: the command refused a
    service already on ``node``), or its agent reports why it cannot restore; None on timeout."""

    def settled() -> MoveOutcome | None:
        pending = parse_move(getattr(store.get(keys.move_request(service)), "value", None))
        observed = _record(store, keys.observed(node, service), Observed)
        if observed is not None and observed.reason in FAILED and pending is not None and pending.id == ident:
            return MoveOutcome(False, f"{observed.reason}: {observed.error}")
        if observed is not None and observed.ready > 0:
            return MoveOutcome(True, f"service/{service} restored and running on {node}")
        return None

    return poll(settled, timeout, mono=mono, sleep=sleep)
