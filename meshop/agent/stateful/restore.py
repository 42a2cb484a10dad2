"""Restore before start: a stateful service that moved here gets its volumes back from their backups.

``gate(service, spec)`` is asked by each reconcile pass once the service holds its volume locks. For
every stateful volume whose lock record says ``pending`` (the previous holder was another node, or a
restore here did not finish) it answers with a fence ``Note`` until the volume is ready, running the
work on a thread of its own so the pass never waits for restic:

* a volume with a ``backup`` and ``failover: restore-latest``: the fresh Docker volume is created, must
  be empty (an old copy of this node's, left from an earlier stay, is kept aside and recorded under
  ``volumes/kept/<node>/``: the service waits, ``StaleVolume``), and the latest snapshot tagged with the
  service and volume is restored into it. The data-loss window (now minus the snapshot's time) goes
  into an event and ``meshop_volume_restore_loss_seconds``. No snapshot, a wrong password, an
  unreachable repository: the service stays fenced (``RestoreFailed``), retried with backoff, never
  started on an empty volume.
* any other volume (no backup, or ``failover: none``): its data is on the previous node, so the
  service waits (``VolumeOnOtherNode``, naming it) — unless the document pins it to this node
  (``placement.node``): then it starts on the fresh, empty volume, and an event says so.

* a service moved here by ``meshop volume restore --to-node`` (``requests/<service>/move`` names this
  node): every volume with a ``backup`` is restored from the request's snapshot (an id, or ``latest``),
  whatever ``failover`` says; once all are settled the controller deletes the request (one-shot: this
  agent may only read it, so a holder cannot move its own service).

Then the lock's record is settled (no longer pending), so a restart of this agent starts the copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from meshop import metrics, restic
from meshop.agent.backup.runner import BackupRunner, Failed, Target
from meshop.agent.cluster.volume_locks import LockRecord
from meshop.agent.planning import labels as L
from meshop.agent.planning.plan import Note
from meshop.agent.stateful import timing
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError, DriverError, ResticError
from meshop.model import ServiceSpec
from meshop.model.records import MoveRequest

log = logging.getLogger(__name__)

RETRY = (10.0, 300.0)  # seconds: first and longest wait between failed restores
FENCE_REASONS = frozenset({"StaleVolume", "VolumeOnOtherNode"})  # said as they are; the rest: RestoreFailed


class Settler(Protocol):
    """``keeper.VolumeLockKeeper``: the lock records."""

    def pending(self, service: str, /) -> list[str]: ...

    def previous(self, service: str, volume: str, /) -> LockRecord | None: ...

    def settle(self, service: str, volume: str, /) -> bool: ...


class Moves(Protocol):
    """``cluster.backups.MoveStore``: ``requests/<service>/move``."""

    def move(self, service: str, /) -> MoveRequest | None: ...


class VolumeEngine(Protocol):
    """``engine.docker_driver.DockerDriver``: a volume's folder, made when missing."""

    def ensure_volume(self, name: str, labels: dict[str, str], /) -> str: ...


class Journal(Protocol):
    def add(self, kind: str, obj: str, message: str, /) -> None: ...


def loss_window(snapshot_time: float, previous: LockRecord | None, now: float) -> tuple[float, str]:
    """How much was written after the snapshot, at most: the old copy wrote until no later than
    ``GIVE_UP + KILL_BUDGET`` after its last renewal (stamped in the lock's record, on the old node's wall
    clock, as the snapshot's time is). Without a stamp: the snapshot's age now."""
    if previous is not None and previous.renewed > 0:
        until = min(now, previous.renewed + timing.GIVE_UP + timing.KILL_BUDGET)
        return max(0.0, until - snapshot_time), f"the copy on {previous.node or '?'} last renewed its lock then"
    return max(0.0, now - snapshot_time), "the snapshot's age"


class RestoreError(Exception):
    """Why a volume cannot be made ready here; ``reason`` is the fence note's (or restic's) word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Job:
    thread: DaemonThread | None = None
    note: Note | None = None  # why the service may not start yet
    retry_at: float = 0.0
    failures: int = 0


class Restorer:
    def __init__(
        self,
        node: str,
        keeper: Settler,
        engine: VolumeEngine,
        runner: BackupRunner,
        journal: Journal,
        *,
        wall: Callable[[], float],
        mono: Callable[[], float],
        on_done: Callable[[], None] = lambda: None,
        moves: Moves | None = None,
    ) -> None:
        self.moves = moves
        self.node, self.keeper, self.engine, self.runner, self.journal = node, keeper, engine, runner, journal
        self.wall, self.mono, self.on_done = wall, mono, on_done
        self._mu = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._restored: dict[str, Note] = {}  # service -> the last restore here, for its observed record

    def notes(self) -> dict[str, Note]:
        """``Restored`` with the data-loss window, per service restored by this agent: its observed
        record (and so ``meshop status``) carries it while nothing more pressing is to say."""
        with self._mu:
            return dict(self._restored)

    def gate(self, service: str, spec: ServiceSpec) -> Note | None:
        """None when every stateful volume of ``service`` is ready here; else why it must wait."""
        pending = self.keeper.pending(service)
        if not pending:
            with self._mu:
                self._jobs.pop(service, None)
            return None
        with self._mu:
            job = self._jobs.setdefault(service, _Job())
            if job.thread is not None and job.thread.is_alive():
                return job.note
            if job.note is not None and job.note.reason != "Restoring" and self.mono() < job.retry_at:
                return job.note
            job.note = Note("Restoring", f"restoring volume(s) {', '.join(pending)} before the first start here")
            job.thread = DaemonThread(f"restore-{service}", lambda: self._run(service, spec, pending)).start()
            return job.note

    def _run(self, service: str, spec: ServiceSpec, pending: list[str]) -> None:
        note: Note | None = None
        move: MoveRequest | None = None
        try:
            move = self.moves.move(service) if self.moves is not None else None
        except ConsulError as exc:
            note = Note("RestoreFailed", f"reading requests/{service}/move: {exc}")
        if move is not None and move.node != self.node:
            move = None  # a move to another node: not ours to carry out
        for volume in spec.stateful_volumes if note is None else ():
            if volume.name not in pending or volume.name is None:
                continue
            try:
                self._restore(service, spec, volume.name, move.snapshot if move else None)
            except RestoreError as exc:
                reason = exc.reason if exc.reason in FENCE_REASONS else "RestoreFailed"
                note = Note(reason, str(exc) if reason == exc.reason else f"{exc} ({exc.reason})")
                self.journal.add(note.reason, f"service/{service}", note.message)
                break
        with self._mu:
            job = self._jobs.setdefault(service, _Job())
            job.note = note
            if note is not None:
                job.failures += 1
                job.retry_at = self.mono() + min(RETRY[1], RETRY[0] * 2 ** (job.failures - 1))
        self.on_done()

    def _restore(self, service: str, spec: ServiceSpec, volume: str, snapshot: str | None = None) -> None:
        """``snapshot``: the id (or ``latest``) a ``--to-node`` move asked for; None: failover's latest."""
        docker_volume = L.volume_name(self.node, service, volume)
        labels = L.volume_labels(self.node, service, volume, False, stateful=True)
        try:
            folder = Path(self.engine.ensure_volume(docker_volume, labels))
        except DriverError as exc:
            raise RestoreError("no-volume", f"volume {volume}: {exc}") from None
        if any(folder.iterdir()):
            raise RestoreError(
                "StaleVolume",
                f"volume {volume}: this node's {docker_volume} holds an older copy (kept, never deleted); "
                f"remove it with `docker volume rm {docker_volume}` to restore the latest backup here",
            )
        backup = next(v.stateful.backup for v in spec.stateful_volumes if v.name == volume and v.stateful)
        if backup is None or (spec.failover != "restore-latest" and snapshot is None):
            previous = self.keeper.previous(service, volume)
            elsewhere = previous.node if previous is not None and previous.node else "another node"
            if spec.placement.node != self.node:
                raise RestoreError(
                    "VolumeOnOtherNode",
                    f"volume {volume}: its data is on node {elsewhere} and there is no backup to restore "
                    f"(failover: {spec.failover}); pin the service there (placement.node), or pin it here "
                    "to start on an empty volume, or add a backup with failover: restore-latest",
                )
            self.journal.add(
                "StartedEmpty",
                f"service/{service}",
                f"volume {volume}: pinned here, away from its data on node {elsewhere}: started on an empty volume",
            )
        else:
            try:
                repo = self.runner.repository(Target(service, volume, docker_volume, "", backup))
            except Failed as exc:
                raise RestoreError(exc.reason, f"volume {volume}: {exc}") from None
            tags = ("meshop", f"service={service}", f"volume={volume}")
            try:
                result = restic.restore(repo, snapshot or "latest", folder, tags)
            except ResticError as exc:
                which = f"snapshot {snapshot}" if snapshot and snapshot != "latest" else "the latest snapshot"
                raise RestoreError(exc.reason, f"volume {volume}: restoring {which}: {exc}") from None
            loss, until = loss_window(result.snapshot_time, self.keeper.previous(service, volume), self.wall())
            metrics.volume_restore_loss_seconds.labels(service, volume).set(loss)
            message = (
                f"volume {volume}: snapshot {result.snapshot_id[:8]} restored ({result.total_bytes} bytes, "
                f"{result.duration_s:.1f}s); data-loss window {loss:.0f}s at most: writes after the snapshot "
                f"are lost ({until})"
            )
            self.journal.add("Restored", f"service/{service}", message)
            with self._mu:
                self._restored[service] = Note("Restored", message)
            log.info("restored %s/%s from snapshot %s; loss window %.0fs", service, volume, result.snapshot_id, loss)
        if not self.keeper.settle(service, volume):
            raise RestoreError("failed", f"volume {volume}: the lock was lost while restoring")
