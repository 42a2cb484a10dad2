"""The volume lock keeper: an agent runs a stateful container only while it holds its volumes' locks.

Three parts, one state (guarded by one mutex):

* ``sync(wanted, present)`` — from each reconcile pass: take the locks of every stateful service
  assigned here (one Consul session per service), let go of those of services gone from this node
  whose containers are gone too, and say which services may not run now (``Note``s the planner turns
  into "no container": nothing created or started, every copy removed). Letting go releases the locks
  (no lock-delay) and destroys the session; when the release is refused (``meshop acl sync`` already
  took the service's lock rights away) the destroyed session frees them after lock-delay.
* the renewer thread renews each session every ``RENEW_EVERY`` seconds and checks that each lock's key
  still names it; ``last_ok`` is the monotonic **start** of the service's last successful renewal. A
  session Consul no longer knows loses its locks; one that renews again after an outage keeps them.
* the watchdog thread looks every ``WATCH_TICK`` seconds: once ``GIVE_UP`` seconds have passed since
  ``last_ok`` every lock counts as lost, and on every tick it SIGKILLs each running stateful container
  whose service does not hold fresh locks. It does not wait for the reconcile loop, which may be stuck
  on Consul or Docker. The timing argument is in ``timing.py`` and docs/stateful.md.
* the leases (``leases.py``), for the fence (``fence.py``), a process of its own that guards the copies
  when this agent is dead or hung: each successful renewal (and the first take) writes the service's
  lease, ``deadline = last_ok + GIVE_UP``, before the planner may start anything; letting go or losing
  the locks removes it. ``unguarded`` tells the reconciler when no fence watches (its heartbeat is
  stale) or a lease cannot be written: then no copy is started (one already running keeps running).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from meshop import metrics
from meshop.agent.cluster.volume_locks import LockRecord
from meshop.agent.planning.plan import Note
from meshop.agent.stateful import timing
from meshop.agent.stateful.guard import Guard, LeaseBook
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError, DriverError

log = logging.getLogger(__name__)


class LockBackend(Protocol):
    """``cluster.volume_locks.VolumeLocks``."""

    def create_session(self, ttl: float, lock_delay: float, /) -> str: ...

    def renew(self, session: str, /) -> bool: ...

    def destroy(self, session: str, /) -> None: ...

    def read(self, service: str, volume: str, /) -> LockRecord | None: ...

    def acquire(self, service: str, volume: str, session: str, record: LockRecord, /) -> bool: ...

    def release(self, service: str, volume: str, session: str, record: LockRecord, /) -> None: ...


class SessionMemory(Protocol):
    """``memory.SessionFile``: the sessions held, across this agent's restarts."""

    def save(self, sessions: dict[str, tuple[str, dict[str, str]]], /) -> None: ...

    def load(self) -> dict[str, tuple[str, dict[str, str]]]: ...


@runtime_checkable
class Killer(Protocol):
    """``engine.docker_driver.DockerDriver``."""

    def kill_unlocked(self, allowed: Set[str], /) -> list[str]: ...


@dataclass(frozen=True)
class Taken:
    """One lock this node holds: the record it wrote, and the one it found (the previous holder's)."""

    record: LockRecord
    previous: LockRecord | None


@dataclass
class _Hold:
    """One stateful service's session and locks on this node."""

    volumes: tuple[str, ...] = ()  # its stateful volumes, as assigned
    session: str | None = None
    last_ok: float | None = None  # monotonic start of the last request that proved the session valid
    held: dict[str, Taken] = field(default_factory=dict)  # volume -> lock
    lost: bool = False  # reported lost (not renewed for GIVE_UP); cleared by the next successful renewal

    def fresh(self, now: float, limit: float) -> bool:
        if self.last_ok is None or now - self.last_ok > limit:
            return False
        return bool(self.volumes) and all(v in self.held for v in self.volumes)


class VolumeLockKeeper:
    def __init__(
        self,
        node: str,
        backend: LockBackend,
        killer: Killer,
        *,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_lost: Callable[[str, str], None] | None = None,
        memory: SessionMemory | None = None,
        leases: LeaseBook | None = None,
    ) -> None:
        self.node = node
        self.memory = memory
        self.backend = backend
        self.killer = killer
        self.mono = mono
        self.wall = wall
        self.on_lost = on_lost or (lambda _service, _why: None)  # an event for people
        self._mu = threading.Lock()
        self._holds: dict[str, _Hold] = {}
        self._armed = True  # the first look kills whatever stateful copy runs without a lock (a restart)
        self._saved: dict[str, tuple[str, dict[str, str]]] | None = None
        self._stop = threading.Event()
        self._threads: list[DaemonThread] = []  # the renewer and the watchdog, both waiting on _stop
        self.guard = Guard(leases)

    # -- what the reconcile pass asks ----------------------------------------------------------------

    def sync(self, wanted: Mapping[str, Sequence[tuple[str, str]]], present: Set[str]) -> dict[str, Note]:
        """``wanted``: service -> (volume, Docker volume) of each stateful volume assigned here;
        ``present``: services with a container on this node. Returns why a service may not run now."""
        with self._mu:
            gone = [s for s in self._holds if s not in wanted and s not in present]
            dropped = {s: self._holds.pop(s) for s in gone}
            for service, volumes in wanted.items():
                self._holds.setdefault(service, _Hold()).volumes = tuple(v for v, _ in volumes)
            self._armed = self._armed or bool(wanted)
        for service, hold in dropped.items():
            self._let_go(service, hold)
        notes: dict[str, Note] = {}
        for service, volumes in sorted(wanted.items()):
            note = self._session(service)
            for volume, docker_volume in volumes:
                note = note or self._take(service, volume, docker_volume)
            self._grant(service)  # before the planner may start a copy: the fence must know it may run
            if note is None and not self.may_run(service):
                note = Note("VolumeLockStale", "the volume lock was not renewed recently")
            if note is not None:
                notes[service] = note
        metrics.volume_locks_held.set(self._count())
        self._persist()
        return notes

    def _persist(self) -> None:
        if self.memory is None:
            return
        with self._mu:
            held = {
                s: (h.session, {v: t.record.volume for v, t in h.held.items()})
                for s, h in self._holds.items()
                if h.session is not None and h.held
            }
            if held == self._saved:
                return
            self._saved = held
        self.memory.save(held)

    def adopt(self) -> list[str]:
        """At start, before the watchdog's first look: take back the sessions a previous run of this
        agent saved, each only if Consul renews it now (then nobody else can hold its locks) and only the
        locks whose key still names it. Returns the services adopted."""
        if self.memory is None:
            return []
        adopted = []
        for service, (session, volumes) in sorted(self.memory.load().items()):
            began = self.mono()
            try:
                if not self.backend.renew(session):
                    continue
                held = {}
                for volume in volumes:
                    record = self.backend.read(service, volume)
                    if record is not None and record.session == session:
                        held[volume] = Taken(record, None)
            except ConsulError as exc:
                log.warning("adopting the volume lock session of %s failed: %s", service, exc)
                continue
            if held:
                with self._mu:
                    self._holds[service] = _Hold(tuple(held), session, began, held)
                self._grant(service)
                adopted.append(service)
                log.info("adopted the volume lock session of %s from the previous run", service)
        return adopted

    def may_run(self, service: str) -> bool:
        """True while every stateful volume of ``service`` is locked by this node, renewed recently
        enough to start something (``START_FRESH``)."""
        with self._mu:
            hold = self._holds.get(service)
            return hold is not None and hold.fresh(self.mono(), timing.START_FRESH)

    def taken(self, service: str) -> dict[str, Taken]:
        """The locks ``service`` holds here (volume -> Taken): ``previous`` tells a move from a restart."""
        with self._mu:
            hold = self._holds.get(service)
            return dict(hold.held) if hold else {}

    def _session(self, service: str) -> Note | None:
        with self._mu:
            if self._holds[service].session is not None:
                return None
        began = self.mono()
        try:
            session = self.backend.create_session(timing.TTL, timing.LOCK_DELAY)
        except ConsulError as exc:
            return Note("VolumeLockUnavailable", f"cannot make a Consul session for the volume lock: {exc}")
        with self._mu:
            hold = self._holds.get(service)
            if hold is not None and hold.session is None:
                hold.session, hold.last_ok = session, began
                return None
        self._destroy(session)  # let go meanwhile
        return Note("VolumeLockUnavailable", "the service left this node")

    def _take(self, service: str, volume: str, docker_volume: str) -> Note | None:
        with self._mu:
            hold = self._holds.get(service)
            if hold is None or hold.session is None:
                return Note("VolumeLockUnavailable", "no Consul session for the volume lock")
            if volume in hold.held:
                return None
            session = hold.session
        began = self.mono()
        try:
            previous = self.backend.read(service, volume)
            if previous is not None and previous.session not in (None, session):
                who = previous.node or "another holder"
                return Note("VolumeLocked", f"volume {volume} is locked by node {who}; it runs there")
            # a move (or a restore that did not finish): the new holder restores before it starts
            # (an unreadable record counts as another node's: restored into a fresh volume, or refused)
            moved = previous is not None and (previous.node != self.node or previous.pending)
            record = LockRecord(self.node, docker_volume, self.wall(), session, pending=moved)
            if not self.backend.acquire(service, volume, session, record):
                return Note("VolumeLockDelay", f"volume {volume}: waiting for its lock (Consul's lock-delay)")
        except ConsulError as exc:
            return Note("VolumeLockUnavailable", f"volume {volume}: {exc}")
        with self._mu:
            hold = self._holds.get(service)
            if hold is None or hold.session != session:  # lost meanwhile: the watchdog dropped it
                return Note("VolumeLockStale", "the volume lock session ended")
            hold.held[volume] = Taken(record, previous)
            hold.last_ok = max(hold.last_ok or began, began)
        log.info("took the lock of volume %s of %s (previous holder: %s)", volume, service, previous)
        return None

    def pending(self, service: str) -> list[str]:
        """The volumes of ``service`` locked here whose restore (after a move) has not finished."""
        with self._mu:
            hold = self._holds.get(service)
            return sorted(v for v, t in hold.held.items() if t.record.pending) if hold else []

    def previous(self, service: str, volume: str) -> LockRecord | None:
        """The record found when this node took the lock: whose copy it was, when it last renewed."""
        with self._mu:
            hold = self._holds.get(service)
            taken = hold.held.get(volume) if hold else None
            return taken.previous if taken else None

    def settle(self, service: str, volume: str) -> bool:
        """The volume is ready here (restored, or nothing to restore): the lock's record says so, so a
        restart of this agent does not take a half-restored volume for its own. False when not held."""
        with self._mu:
            hold = self._holds.get(service)
            taken = hold.held.get(volume) if hold else None
            session = hold.session if hold else None
        if taken is None or session is None or not taken.record.pending:
            return taken is not None
        record = replace(taken.record, session=session, pending=False)
        try:
            if not self.backend.acquire(service, volume, session, record):
                return False
        except ConsulError as exc:
            log.warning("recording volume %s of %s as restored failed: %s", volume, service, exc)
            return False
        with self._mu:
            hold = self._holds.get(service)
            if hold is not None and hold.session == session and volume in hold.held:
                hold.held[volume] = Taken(record, taken.previous)
        return True

    def _grant(self, service: str) -> None:
        """Write the lease of ``service`` (``last_ok + GIVE_UP``) when it holds every lock."""
        self.guard.grant(service, lambda: self._deadline(service))

    def _deadline(self, service: str) -> float | None:
        with self._mu:
            hold = self._holds.get(service)
            if hold is None or hold.session is None or hold.last_ok is None:
                return None
            if not hold.volumes or not all(v in hold.held for v in hold.volumes):
                return None
            return hold.last_ok + timing.GIVE_UP

    def unguarded(self, service: str) -> str | None:
        """Why no copy of ``service`` may start now although its locks are held (``guard.Guard``)."""
        return self.guard.unguarded(service, self.mono())

    def _let_go(self, service: str, hold: _Hold) -> None:
        """Release a departed service's locks (no lock-delay), then end its session."""
        self.guard.revoke(service)
        if hold.session is None:
            return
        for volume, taken in hold.held.items():
            try:
                self.backend.release(service, volume, hold.session, taken.record)
            except ConsulError as exc:  # destroying the session frees it, after lock-delay
                log.warning("releasing the lock of %s/%s failed: %s", service, volume, exc)
        self._destroy(hold.session)

    def _destroy(self, session: str) -> None:
        try:
            self.backend.destroy(session)
        except ConsulError as exc:  # no one renews it any more: its TTL ends it
            log.warning("destroying volume lock session %s failed: %s", session, exc)

    def _count(self) -> int:
        with self._mu:
            return sum(len(h.held) for h in self._holds.values())

    # -- threads -------------------------------------------------------------------------------------

    def start(self) -> VolumeLockKeeper:
        self.adopt()
        for name, target in (("volume-lock-renewer", self._renew_loop), ("volume-lock-watchdog", self._watch_loop)):
            self._threads.append(DaemonThread(name, target, stopping=self._stop).start())
        return self

    def stop(self) -> None:
        """Stop the threads; kill every stateful copy (no one renews once the agent is gone), then
        release the locks (no lock-delay: the next holder may start at once) and end the sessions."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timing.KILL_BUDGET + timing.RENEW_TIMEOUT)
        try:
            self.killer.kill_unlocked(frozenset())
        except DriverError as exc:
            log.error("could not kill the stateful containers at shutdown: %s", exc)
            return  # keep the locks: their expiry and lock-delay still protect
        with self._mu:
            holds, self._holds = self._holds, {}
        for service, hold in holds.items():
            self._let_go(service, hold)  # its lease too: the copy is dead
        metrics.volume_locks_held.set(0)
        self._persist()

    def renew_once(self) -> None:
        """One renewal and lock check per service (the renewer thread's step; tests call it)."""
        with self._mu:
            sessions = {s: (h.session, tuple(h.held)) for s, h in self._holds.items() if h.session}
        for service, (session, volumes) in sessions.items():
            assert session is not None
            began = self.mono()
            try:
                alive = self.backend.renew(session)
            except ConsulError as exc:
                log.warning("renewing the volume lock session of %s failed: %s", service, exc)
                continue
            if not alive:
                self._lose(service, session, "Consul no longer knows its volume lock session")
                continue
            with self._mu:
                hold = self._holds.get(service)
                if hold is not None and hold.session == session:
                    hold.last_ok = max(hold.last_ok or began, began)
                    hold.lost = False
            for volume in volumes:
                # re-acquiring with the session checks the key is still this node's and stamps the
                # renewal's time, which bounds a successor's data-loss window (restore.py)
                if not self._stamp(service, volume, session):
                    self._lose(service, session, f"the lock of volume {volume} is no longer this node's")
                    break
            else:
                self._grant(service)  # the fence's deadline moves on: began + GIVE_UP

    def _stamp(self, service: str, volume: str, session: str) -> bool:
        """False only when Consul says the key is another session's; an error proves nothing."""
        with self._mu:
            hold = self._holds.get(service)
            taken = hold.held.get(volume) if hold is not None and hold.session == session else None
        if taken is None:
            return True
        record = replace(taken.record, renewed=self.wall())
        try:
            if not self.backend.acquire(service, volume, session, record):
                return False
        except ConsulError:
            return True  # the renewal proved the session; the key is checked next time
        with self._mu:
            hold = self._holds.get(service)
            if hold is not None and hold.session == session and volume in hold.held:
                hold.held[volume] = Taken(record, taken.previous)
        return True

    def watch_once(self) -> list[str]:
        """One watchdog look: drop stale locks, kill every running copy without fresh locks."""
        now = self.mono()
        lost: list[str] = []
        with self._mu:
            for service, hold in self._holds.items():
                stale = hold.last_ok is None or now - hold.last_ok > timing.GIVE_UP
                if stale and hold.held and not hold.lost:
                    # its copy dies below; the session is kept: a later successful renewal proves it
                    # still holds the locks (nobody else can then), and the service may run again
                    hold.lost = True
                    lost.append(service)
            allowed = frozenset(s for s, h in self._holds.items() if h.fresh(now, timing.GIVE_UP))
            look = self._armed or bool(self._holds)
            self._armed = False  # until a pass wants a lock again: an idle agent does not poll Docker
        if not look:
            return []
        for service in lost:
            self._report_lost(service, f"the volume lock was not renewed for {timing.GIVE_UP:g}s")
        try:
            killed = self.killer.kill_unlocked(allowed)
        except DriverError as exc:
            log.error("the volume lock watchdog could not list or kill containers: %s", exc)
            with self._mu:
                self._armed = True  # look again next tick
            return []
        for service in killed:
            log.warning("killed a copy of %s: it holds no fresh volume lock", service)
            metrics.volume_lock_kills_total.inc()
        return killed

    def _lose(self, service: str, session: str, why: str) -> None:
        with self._mu:
            hold = self._holds.get(service)
            if hold is None or hold.session != session:
                return
            hold.session, hold.held = None, {}
        self.guard.revoke(service)
        self._report_lost(service, why)
        self._persist()
        self.watch_once()  # kill now, not at the next tick

    def _report_lost(self, service: str, why: str) -> None:
        log.error("lost the volume lock of %s: %s; killing its container", service, why)
        metrics.volume_locks_held.set(self._count())
        self.on_lost(service, why)

    def _renew_loop(self) -> None:
        while not self._stop.wait(timing.RENEW_EVERY):
            try:
                self.renew_once()
            except Exception:  # a bug here must not end the renewals silently; the watchdog still guards
                log.exception("volume lock renewal failed")

    def _watch_loop(self) -> None:
        while not self._stop.wait(timing.WATCH_TICK):
            try:
                self.watch_once()
            except Exception:
                log.exception("volume lock watchdog failed")
