"""The volume lock keeper: an agent runs a stateful container only while it holds its volumes' locks.

Three parts, one state (guarded by one mutex):

* ``sync(wanted, present)`` — from each reconcile pass: take the locks of every stateful service
  assigned here (one session for all of them), release those of services gone from this node whose
  containers are gone too, and say which services may not run now (``Note``s the planner turns into
  "no container": nothing created or started, every copy removed).
* the renewer thread renews the session every ``RENEW_EVERY`` seconds and checks that each lock's key
  still names the session; ``last_ok`` is the monotonic **start** of the last successful renewal.
* the watchdog thread looks every ``WATCH_TICK`` seconds: once ``GIVE_UP`` seconds have passed since
  ``last_ok`` every lock counts as lost, and on every tick it SIGKILLs each running stateful container
  whose service does not hold fresh locks. It does not wait for the reconcile loop, which may be stuck
  on Consul or Docker. The timing argument is in ``timing.py`` and docs/stateful.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from meshop import metrics
from meshop.agent.cluster.volume_locks import LockRecord
from meshop.agent.planning.plan import Note
from meshop.agent.stateful import timing
from meshop.errors import ConsulError, DriverError

log = logging.getLogger(__name__)


class LockBackend(Protocol):
    """``cluster.volume_locks.VolumeLocks``."""

    def create_session(self, ttl: float, lock_delay: float, /) -> str: ...

    def renew(self, session: str, /) -> bool: ...

    def destroy(self, session: str, /) -> None: ...

    def read(self, service: str, volume: str, /) -> LockRecord | None: ...

    def acquire(self, service: str, volume: str, session: str, record: LockRecord, /) -> bool: ...

    def release(self, service: str, volume: str, session: str, /) -> None: ...


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
class _State:
    session: str | None = None
    last_ok: float | None = None  # monotonic start of the last request that proved the session valid
    held: dict[str, dict[str, Taken]] = field(default_factory=dict)  # service -> volume -> lock
    wanted: dict[str, tuple[str, ...]] = field(default_factory=dict)  # service -> its stateful volumes


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
    ) -> None:
        self.node = node
        self.backend = backend
        self.killer = killer
        self.mono = mono
        self.wall = wall
        self.on_lost = on_lost or (lambda _service, _why: None)  # an event for people
        self._mu = threading.Lock()
        self._state = _State()
        self._armed = True  # the first look kills whatever stateful copy runs without a lock (a restart)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- what the reconcile pass asks ----------------------------------------------------------------

    def sync(self, wanted: Mapping[str, Sequence[tuple[str, str]]], present: Set[str]) -> dict[str, Note]:
        """``wanted``: service -> (volume, Docker volume) of each stateful volume assigned here;
        ``present``: services with a container on this node. Returns why a service may not run now."""
        notes: dict[str, Note] = {}
        self._release_unwanted(set(wanted), present)
        with self._mu:
            self._state.wanted = {s: tuple(v for v, _ in vols) for s, vols in wanted.items()}
            self._armed = self._armed or bool(wanted)
        if wanted and not self._session():
            note = Note("VolumeLockUnavailable", "cannot make a Consul session for the volume lock")
            return dict.fromkeys(wanted, note)
        for service, volumes in sorted(wanted.items()):
            for volume, docker_volume in volumes:
                note = self._take(service, volume, docker_volume)
                if note is not None:
                    notes.setdefault(service, note)
            if service not in notes and not self.may_run(service):
                notes[service] = Note("VolumeLockStale", "the volume lock was not renewed recently")
        return notes

    def may_run(self, service: str) -> bool:
        """True while every stateful volume of ``service`` is locked by this node, renewed recently
        enough to start something (``START_FRESH``)."""
        with self._mu:
            return self._fresh(service, timing.START_FRESH)

    def taken(self, service: str) -> dict[str, Taken]:
        """The locks ``service`` holds here (volume -> Taken): ``previous`` tells a move from a restart."""
        with self._mu:
            return dict(self._state.held.get(service, {}))

    def _fresh(self, service: str, limit: float) -> bool:
        state = self._state
        volumes = state.wanted.get(service) or tuple(state.held.get(service, {}))
        if state.last_ok is None or self.mono() - state.last_ok > limit:
            return False
        return bool(volumes) and all(v in state.held.get(service, {}) for v in volumes)

    def _session(self) -> bool:
        with self._mu:
            if self._state.session is not None:
                return True
        began = self.mono()
        try:
            session = self.backend.create_session(timing.TTL, timing.LOCK_DELAY)
        except ConsulError as exc:
            log.warning("cannot create the volume lock session: %s", exc)
            return False
        with self._mu:
            self._state.session, self._state.last_ok = session, began
        log.info("volume lock session %s created", session)
        return True

    def _take(self, service: str, volume: str, docker_volume: str) -> Note | None:
        with self._mu:
            if volume in self._state.held.get(service, {}):
                return None
            session = self._state.session
        if session is None:
            return Note("VolumeLockUnavailable", "no Consul session for the volume lock")
        began = self.mono()
        try:
            previous = self.backend.read(service, volume)
            if previous is not None and previous.session not in (None, session):
                who = previous.node or "another holder"
                return Note("VolumeLocked", f"volume {volume} is locked by node {who}; it runs there")
            record = LockRecord(self.node, docker_volume, self.wall(), session)
            if not self.backend.acquire(service, volume, session, record):
                return Note("VolumeLockDelay", f"volume {volume}: waiting for its lock (Consul's lock-delay)")
        except ConsulError as exc:
            return Note("VolumeLockUnavailable", f"volume {volume}: {exc}")
        with self._mu:
            if self._state.session != session:  # lost meanwhile: the watchdog cleared it
                return Note("VolumeLockStale", "the volume lock session ended")
            self._state.held.setdefault(service, {})[volume] = Taken(record, previous)
            self._state.last_ok = max(self._state.last_ok or began, began)
        metrics.volume_locks_held.set(self._count())
        log.info("took the lock of volume %s of %s (previous holder: %s)", volume, service, previous)
        return None

    def _release_unwanted(self, wanted: Set[str], present: Set[str]) -> None:
        """Release the locks of services neither assigned here nor still present as a container."""
        with self._mu:
            gone = [s for s in self._state.held if s not in wanted and s not in present]
            session = self._state.session
            released = {s: self._state.held.pop(s) for s in gone}
        for service, volumes in released.items():
            for volume in volumes:
                try:
                    if session is not None:
                        self.backend.release(service, volume, session)
                except ConsulError as exc:  # the session's end releases it (after lock-delay)
                    log.warning("releasing the lock of %s/%s failed: %s", service, volume, exc)
        if released:
            metrics.volume_locks_held.set(self._count())

    def _count(self) -> int:
        with self._mu:
            return sum(len(v) for v in self._state.held.values())

    # -- threads -------------------------------------------------------------------------------------

    def start(self) -> VolumeLockKeeper:
        for name, target in (("volume-lock-renewer", self._renew_loop), ("volume-lock-watchdog", self._watch_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads; kill every stateful copy (no one renews once the agent is gone), then
        release the locks (no lock-delay: the next holder may start at once) and end the session."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timing.KILL_BUDGET + timing.RENEW_TIMEOUT)
        try:
            self.killer.kill_unlocked(frozenset())
        except DriverError as exc:
            log.error("could not kill the stateful containers at shutdown: %s", exc)
            return  # keep the locks: their expiry and lock-delay still protect
        self._release_unwanted(frozenset(), frozenset())
        with self._mu:
            session, self._state.session = self._state.session, None
        if session is not None:
            try:
                self.backend.destroy(session)
            except ConsulError as exc:
                log.warning("destroying the volume lock session failed: %s", exc)

    def renew_once(self) -> None:
        """One renewal and lock check (the renewer thread's step; tests call it)."""
        with self._mu:
            session, services = self._state.session, {s: tuple(v) for s, v in self._state.held.items()}
        if session is None:
            return
        began = self.mono()
        try:
            alive = self.backend.renew(session)
        except ConsulError as exc:
            log.warning("renewing the volume lock session failed: %s", exc)
            return
        if not alive:
            self._lose(None, "Consul no longer knows the volume lock session")
            return
        with self._mu:
            if self._state.session == session:
                self._state.last_ok = max(self._state.last_ok or began, began)
        for service, volumes in services.items():
            for volume in volumes:
                try:
                    record = self.backend.read(service, volume)
                except ConsulError:
                    continue  # the renewal proved the session; the key is checked next time
                if record is None or record.session != session:
                    self._lose(service, f"the lock of volume {volume} is no longer this node's")
                    break

    def watch_once(self) -> list[str]:
        """One watchdog look: drop stale locks, kill every running copy without fresh locks."""
        with self._mu:
            state = self._state
            stale = state.last_ok is None or self.mono() - state.last_ok > timing.GIVE_UP
            lost = list(state.held) if stale and state.held else []
            if stale:
                state.held.clear()
                state.session = None  # never trusted again: a new one is made by the next pass
            allowed = frozenset(s for s in state.held if self._fresh(s, timing.GIVE_UP))
            look = self._armed or bool(state.wanted or state.held or lost)
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

    def _lose(self, service: str | None, why: str) -> None:
        with self._mu:
            if service is None:
                services = list(self._state.held)
                self._state.held.clear()
                self._state.session = None
            else:
                services = [service] if self._state.held.pop(service, None) is not None else []
        for name in services:
            self._report_lost(name, why)
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
