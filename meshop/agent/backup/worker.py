"""The agent's backup thread: scheduled (and requested) restic backups of the stateful volumes it holds.

Beside the reconcile loop, like the usage sampler: it reads what the last pass saw (the valid specs
and the containers listed, ``inputs``), so it lists nothing itself. A volume is a candidate while a
container of its service runs here and ``may_write(service)`` says this node is the volume's writer
(the stateful lock; without one wired, a running container here is the proof). ``schedule.due``
decides, ``runner.BackupRunner`` acts, one backup at a time. After each pass it writes
``backups/<node>/<service>`` where it changed, removes the records of services no longer here, and
exports the ``meshop_volume_backup_*`` metrics (age refreshed every pass). A failure of Consul or of a
backup never leaves this thread; a bug is logged and the next pass runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from meshop import metrics
from meshop.agent.backup.restore import restore_service
from meshop.agent.backup.runner import BackupRunner, Outcome, Target
from meshop.agent.backup.schedule import Attempt, Candidate, VolumeKey, due, wait_for
from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.planning import labels as L
from meshop.agent.planning.plan import Container
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError
from meshop.model import ServiceSpec
from meshop.model.records import BackupRecord, RestoreReport, RestoreRequest, SnapshotInfo, VolumeBackup
from meshop.restic.repository import masked

log = logging.getLogger(__name__)

TICK = 2.0  # seconds between looks at requests and specs when nothing is due sooner
Inputs = Callable[[], tuple[Mapping[str, ServiceSpec], Sequence[Container]]]


class BackupSink(Protocol):
    """``cluster.backups.BackupStore``."""

    @property
    def services(self) -> set[str]: ...

    def request(self, service: str, /) -> str: ...

    def restore(self, service: str, /) -> tuple[RestoreRequest, int] | None: ...

    def consume_restore(self, service: str, index: int, /) -> None: ...

    def publish(self, record: BackupRecord, /) -> bool: ...

    def delete(self, services: Iterable[str], /) -> None: ...

    def adopt(self) -> None: ...


class BackupWorker:
    def __init__(
        self,
        node: str,
        runner: BackupRunner,
        inputs: Inputs,
        store: BackupSink,
        *,
        may_write: Callable[[str], bool] = lambda _service: True,
        clocks: Clocks = SYSTEM,
        tick: float = TICK,
    ) -> None:
        self.node = node
        self.runner = runner
        self.inputs = inputs
        self.store = store
        self.may_write = may_write
        self.clocks = clocks
        self.tick = tick
        self.history: dict[VolumeKey, Attempt] = {}
        self.reports: dict[VolumeKey, VolumeBackup] = {}
        self.held_since: dict[VolumeKey, float] = {}  # wall time this agent first saw it a candidate
        self.restores: dict[str, RestoreReport] = {}  # service -> the last restore carried out here
        self.restored: set[str] = set()  # request ids carried out (a request not yet consumed is not redone)
        self._adopted = False
        self.thread = DaemonThread(f"backup-{node}", self._run)

    # -- one pass ------------------------------------------------------------------------------------

    def targets(self, *, stopped_too: bool = False) -> list[tuple[Candidate, Target]]:
        """The backed-up volumes of the services whose container runs here (one a ``prepare: stop``
        holds stopped counts; with ``stopped_too`` any of its containers: a restore) and whose volume
        lock this node holds."""
        specs, containers = self.inputs()
        chosen: dict[str, str] = {}
        for c in sorted(containers, key=lambda c: (not c.running, c.id)):
            if (c.running or c.id in self.runner.paused or stopped_too) and c.replica >= 0 and c.service in specs:
                chosen.setdefault(c.service, c.id)
        found = []
        for service, spec in sorted(specs.items()):
            cid = chosen.get(service)
            if not cid or not self.may_write(service):
                continue
            for volume in spec.stateful_volumes:
                backup = volume.stateful.backup if volume.stateful else None
                if backup is None or volume.name is None:
                    continue
                docker_volume = L.volume_name(self.node, service, volume.name)
                candidate = Candidate(service, volume.name, backup.every)
                found.append((candidate, Target(service, volume.name, docker_volume, cid, backup)))
        return found

    def pass_once(self) -> float | None:
        """Run what is due, publish, export; seconds until the next look (None: nothing scheduled)."""
        held = self.targets(stopped_too=True)  # kept (records, history) while a container of it is here
        running = {t.container_id for _, t in self.targets()}
        candidates = [self._with_request(c) for c, t in held if t.container_id in running]
        by_key = {c.key: t for c, t in held}
        wall = self.clocks.wall()
        for c, _ in held:
            self.held_since.setdefault(c.key, wall)
        for candidate in due(candidates, self.history, self.clocks.mono()):
            self._attempt(candidate, by_key[candidate.key])
        self._restores(held)
        self._publish({c.key: c for c, _ in held})
        return wait_for(candidates, self.history, self.clocks.mono())

    def _with_request(self, candidate: Candidate) -> Candidate:
        try:
            request = self.store.request(candidate.service)
        except ConsulError as exc:
            log.debug("cannot read the backup request of %s: %s", candidate.service, exc)
            return candidate
        return replace(candidate, request=request) if request else candidate

    def _attempt(self, candidate: Candidate, target: Target) -> None:
        began = self.clocks.mono()
        outcome = self.runner.run(target)
        last = self.history.get(candidate.key)
        failures = 0 if outcome.ok else (last.failures if last else 0) + 1
        handled = candidate.request or (last.request if last else "")
        self.history[candidate.key] = Attempt(began, outcome.ok, failures, handled)
        self.reports[candidate.key] = report(
            self.reports.get(candidate.key), candidate, target, outcome, failures, handled
        )
        if not outcome.ok:
            metrics.volume_backup_failures_total.labels(candidate.service, candidate.volume, outcome.reason).inc()

    def _restores(self, found: list[tuple[Candidate, Target]]) -> None:
        """Carry out each pending ``meshop volume restore`` once, then consume its request."""
        by_service: dict[str, list[Target]] = {}
        for _, target in found:
            by_service.setdefault(target.service, []).append(target)
        for service, targets in by_service.items():
            try:
                pending = self.store.restore(service)
            except ConsulError as exc:
                log.debug("cannot read the restore request of %s: %s", service, exc)
                continue
            if pending is None or pending[0].id in self.restored:
                continue
            request, index = pending
            self.restored.add(request.id)
            self.restores[service] = restore_service(self.runner, targets, request)
            for key in [k for k in self.history if k[0] == service]:
                del self.history[key]  # back the restored data up soon: the restore point moves with it
            try:
                self.store.consume_restore(service, index)
            except ConsulError as exc:
                log.warning("cannot remove the restore request of %s (carried out): %s", service, exc)

    def _publish(self, current: Mapping[VolumeKey, Candidate]) -> None:
        now = self.clocks.wall()
        services: dict[str, list[VolumeBackup]] = {}
        for key in sorted(current):
            vb = self.reports.get(key)
            if vb is not None:
                services.setdefault(key[0], []).append(vb)
            self._export(key, current[key], vb, now)
        for key in set(self.reports) - set(current):  # moved away, or no longer backed up
            del self.reports[key]
            self.history.pop(key, None)
            self.held_since.pop(key, None)
            for gauge in (
                metrics.volume_backup_age_seconds,
                metrics.volume_backup_interval_seconds,
                metrics.volume_backup_last_duration_seconds,
                metrics.volume_backup_last_size_bytes,
                metrics.volume_backup_last_added_bytes,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)
        try:
            if not self._adopted:
                self.store.adopt()
                self._adopted = True
            for service in set(self.restores) - set(services) - {k[0] for k in current}:
                del self.restores[service]  # no longer here
            for service in set(self.restores) & {k[0] for k in current}:
                services.setdefault(service, [])
            for service, volumes in services.items():
                self.store.publish(BackupRecord(service, self.node, tuple(volumes), now, self.restores.get(service)))
            self.store.delete(self.store.services - set(services))
        except ConsulError as exc:
            log.warning("cannot write the backup records: %s", exc)

    def _export(self, key: VolumeKey, candidate: Candidate, vb: VolumeBackup | None, now: float) -> None:
        since = vb.last_success if vb is not None and vb.last_success else self.held_since.get(key, now)
        metrics.volume_backup_age_seconds.labels(*key).set(max(0.0, now - since))
        metrics.volume_backup_interval_seconds.labels(*key).set(candidate.every)
        if vb is not None and vb.last_success:
            metrics.volume_backup_last_duration_seconds.labels(*key).set(vb.duration)
            metrics.volume_backup_last_size_bytes.labels(*key).set(vb.total_bytes)
            metrics.volume_backup_last_added_bytes.labels(*key).set(vb.bytes_added)

    # -- the thread ----------------------------------------------------------------------------------

    def start(self) -> BackupWorker:
        self.thread.start()
        return self

    def _run(self) -> None:
        stopping = self.thread.stopping
        while not stopping.is_set():
            try:
                wait = self.pass_once()
            except Exception:  # a bug in backups must never take the agent down
                log.exception("backup pass failed")
                wait = None
            stopping.wait(min(self.tick, wait) if wait is not None else self.tick)

    def stop(self, timeout: float = 5.0) -> None:
        self.thread.stop(timeout)


def report(
    before: VolumeBackup | None,
    candidate: Candidate,
    target: Target,
    outcome: Outcome,
    failures: int,
    request: str,
) -> VolumeBackup:
    """The volume's record after ``outcome``: a failure keeps the last success's figures."""
    shown = masked(target.backup.repository)
    base = before or VolumeBackup(volume=candidate.volume)
    base = replace(base, repository=shown, every=candidate.every, last_attempt=outcome.started, request=request)
    if not outcome.ok:
        return replace(base, error=outcome.error, reason=outcome.reason, failures=failures)
    result = outcome.result
    assert result is not None
    snapshots = tuple(SnapshotInfo(s.short_id, s.time, s.hostname) for s in outcome.snapshots[-100:])
    return replace(
        base,
        last_success=outcome.started + outcome.duration,
        snapshot=result.snapshot_id[:8],
        bytes_added=result.bytes_added,
        total_bytes=result.total_bytes,
        files=result.files,
        duration=round(outcome.duration, 3),
        error="",
        reason="",
        failures=0,
        snapshots=snapshots or base.snapshots,
    )
