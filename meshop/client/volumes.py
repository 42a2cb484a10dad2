"""Stateful volumes for people: their backups (``backups/<node>/<service>``), ``meshop volume ...``.

The records are written by agents, so they are read as untrusted: the key's node and service must be
DNS labels and match the record's own, a record that fails the strict codec is skipped. Only the
record of a node the service is placed on counts (``placement``): a node the service moved away from
stops writing its record and removes it, but a dead node cannot, and its stale figures must not look
current. ``meshop volume backup`` writes ``requests/<service>/backup`` with a fresh id; the agent holding
the volume carries it out once and reports the id back. Pure except ``read_backups``,
``request_backup`` and ``wait_for_request``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from meshop.consul.store import Entry, KVStore
from meshop.errors import DocumentError, NotFound
from meshop.model import ServiceSpec, keys
from meshop.model.codec import RecordError
from meshop.model.names import is_dns_label
from meshop.model.records import (
    BackupRecord,
    BackupRequest,
    RestoreReport,
    RestoreRequest,
    SnapshotInfo,
    VolumeBackup,
    dumps,
    loads_json,
)

_DOCKER_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
Records = Mapping[tuple[str, str], BackupRecord]  # (node, service) -> record


@dataclass(frozen=True)
class BackupLine:
    """One stateful volume's backups as the node holding it reports them."""

    service: str
    node: str
    backup: VolumeBackup

    def age(self, now: float) -> float | None:
        return max(0.0, now - self.backup.last_success) if self.backup.last_success else None

    def stale(self, now: float) -> bool:
        """No backup yet, or the last is older than twice the interval (the alert's rule)."""
        age = self.age(now)
        return age is None or (self.backup.every > 0 and age > 2 * self.backup.every)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"service": self.service, "node": self.node, "age": self.age(now), **self.backup.to_dict()}


def parse_backups(entries: Iterable[Entry]) -> dict[tuple[str, str], BackupRecord]:
    """The readable records under ``backups/``, keyed by (node, service); anything else is skipped."""
    found: dict[tuple[str, str], BackupRecord] = {}
    for entry in entries:
        parts = entry.key.removeprefix(keys.BACKUPS).split("/")
        if not entry.key.startswith(keys.BACKUPS) or len(parts) != 2 or not all(map(is_dns_label, parts)):
            continue
        node, service = parts
        try:
            record = BackupRecord.from_dict(loads_json(entry.value))
        except (RecordError, ValueError):
            continue
        if record.node == node and record.service == service:
            found[(node, service)] = record
    return found


def backup_lines(records: Records, placement: Mapping[str, Iterable[str]] | None = None) -> list[BackupLine]:
    """One line per volume, by service and volume; with ``placement`` (service -> its nodes) only the
    records of nodes the service is placed on."""
    lines = []
    for (node, service), record in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if placement is not None and node not in set(placement.get(service, ())):
            continue
        lines += [BackupLine(service, node, v) for v in sorted(record.volumes, key=lambda v: v.volume)]
    return lines


def read_backups(store: KVStore) -> dict[tuple[str, str], BackupRecord]:
    return parse_backups(store.list(keys.BACKUPS).entries)


def backed_up_volumes(spec: ServiceSpec) -> list[str]:
    return [v.name for v in spec.stateful_volumes if v.name and v.stateful and v.stateful.backup]


def _spec_of(store: KVStore, service: str) -> ServiceSpec:
    from meshop.operator.desired import parse_service_entry  # validation: loads the schemas, only here

    entry = store.get(keys.desired_service(service))
    if entry is None:
        raise NotFound(f"service {service} not found")
    parsed = parse_service_entry(service, entry, store.config.prefix)
    if parsed.desired is None or not parsed.desired.valid:
        problems = "; ".join(str(v) for v in parsed.violations)[:300]
        raise DocumentError(f"service/{service} is not valid, so nothing is backed up: {problems}")
    return ServiceSpec.from_dict(dict(parsed.desired.spec))


def request_backup(store: KVStore, service: str, now: float) -> str:
    """Ask the node holding ``service`` for a backup of its stateful volumes now; the request's id."""
    if not is_dns_label(service):
        raise NotFound(f"service {service!r} not found (not a service name)")
    if not backed_up_volumes(_spec_of(store, service)):
        raise DocumentError(f"service/{service} has no stateful volume with a backup (spec.volumes[].stateful.backup)")
    ident = f"{int(now)}-{secrets.token_hex(4)}"
    store.put(keys.backup_request(service), dumps(BackupRequest(ident, now)))
    return ident


_SNAPSHOT_REF = re.compile(r"latest|[0-9a-f]{8,64}")


def request_restore(store: KVStore, service: str, snapshot: str, volume: str, now: float) -> str:
    """Ask the node holding ``service`` to stop it, restore ``snapshot`` into its volume(s) and start it
    again (``requests/<service>/restore``); the request's id. Checked here, and again by the agent."""
    if not is_dns_label(service):
        raise NotFound(f"service {service!r} not found (not a service name)")
    if not _SNAPSHOT_REF.fullmatch(snapshot):
        raise DocumentError(f"--snapshot {snapshot!r}: 'latest' or a snapshot id (8 to 64 hex digits)")
    volumes = backed_up_volumes(_spec_of(store, service))
    if not volumes:
        raise DocumentError(f"service/{service} has no stateful volume with a backup (spec.volumes[].stateful.backup)")
    if volume and volume not in volumes:
        raise DocumentError(f"--volume {volume!r}: service/{service}'s backed-up volumes are {', '.join(volumes)}")
    if snapshot != "latest" and not volume and len(volumes) > 1:
        raise DocumentError(f"a snapshot id names one volume's snapshot: add --volume ({', '.join(volumes)})")
    ident = f"{int(now)}-{secrets.token_hex(4)}"
    request = RestoreRequest(ident, snapshot, volume, now)
    store.put(keys.restore_request(service), dumps(request))
    return ident


T = TypeVar("T")


def poll(
    check: Callable[[], T | None],
    timeout: float,
    *,
    mono: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.5,
) -> T | None:
    """``check()`` every ``interval`` seconds until it returns something, at least once; None once
    ``timeout`` (monotonic) has passed. What the ``volume`` commands' ``--wait`` waits with."""
    deadline = mono() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if mono() >= deadline:
            return None
        sleep(interval)


def wait_for_restore(
    store: KVStore,
    service: str,
    ident: str,
    timeout: float,
    *,
    mono: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, RestoreReport] | None:
    """Poll until a node reports restore ``ident`` of ``service``: (node, report), or None on timeout."""

    def reported() -> tuple[str, RestoreReport] | None:
        for (node, name), record in read_backups(store).items():
            if name == service and record.restore is not None and record.restore.id == ident:
                return node, record.restore
        return None

    return poll(reported, timeout, mono=mono, sleep=sleep)


def wait_for_request(
    store: KVStore,
    service: str,
    ident: str,
    timeout: float,
    *,
    mono: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[BackupLine]:
    """Poll until a node reports request ``ident`` carried out for ``service``; its lines (empty on
    timeout)."""

    def carried_out() -> list[BackupLine] | None:
        records = {k: r for k, r in read_backups(store).items() if k[1] == service}
        return [line for line in backup_lines(records) if line.backup.request == ident] or None

    return poll(carried_out, timeout, mono=mono, sleep=sleep) or []


def snapshots_of(lines: Iterable[BackupLine]) -> list[tuple[str, SnapshotInfo]]:
    """(volume, snapshot) newest first, as the holding node last listed the repository."""
    found = [(line.backup.volume, s) for line in lines for s in line.backup.snapshots]
    return sorted(found, key=lambda vs: (-vs[1].time, vs[0], vs[1].id))


@dataclass(frozen=True)
class VolumeRow:
    """A row of ``meshop volume ls``: a stateful volume of a service (``kept`` False), or a stale copy a
    node kept aside after the service moved (``kept`` True; never deleted by meshop)."""

    service: str
    volume: str
    node: str  # where it is (the service's placement), or "" when not placed
    kept: bool = False
    backup: BackupLine | None = None

    def to_dict(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"service": self.service, "volume": self.volume, "node": self.node, "kept": self.kept}
        if self.backup is not None:
            out["backup"] = self.backup.to_dict(now)
        return out


def kept_entries(entries: Iterable[Entry]) -> list[tuple[str, str]]:
    """(node, Docker volume) of ``volumes/kept/<node>/<name>`` keys; other keys are skipped."""
    found = []
    for entry in entries:
        parts = entry.key.removeprefix(keys.KEPT_VOLUMES).split("/")
        ours = entry.key.startswith(keys.KEPT_VOLUMES) and len(parts) == 2
        if ours and is_dns_label(parts[0]) and _DOCKER_VOLUME.fullmatch(parts[1]):
            found.append((parts[0], parts[1]))
    return sorted(found)


def volume_rows(
    specs: Mapping[str, ServiceSpec],
    placement: Mapping[str, Iterable[str]],
    records: Records,
    kept: Iterable[tuple[str, str]] = (),
) -> list[VolumeRow]:
    """Pure: every stateful volume of the valid services, with the placed node's backups, then the kept."""
    lines = {(line.service, line.backup.volume): line for line in backup_lines(records, placement)}
    rows = []
    for service, spec in sorted(specs.items()):
        nodes = sorted(placement.get(service, ())) or [""]
        for volume in spec.stateful_volumes:
            if volume.name:
                line = lines.get((service, volume.name))
                rows += [VolumeRow(service, volume.name, node, False, line) for node in nodes]
    rows += [VolumeRow("", name, node, True) for node, name in kept]
    return rows
