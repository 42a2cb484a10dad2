"""Leader election: one controller acts, the others stand by, a deposed one stops writing at once.

Each controller registers itself in Consul as ``meshop-controller`` (id ``meshop-controller-<id>``, the
KV prefix added when it is not the default: ``controller_service_id``) with
a TTL check that its own heartbeat thread passes every ``check_ttl / 3`` seconds. Its session is tied to
that check (and the Consul node's ``serfHealth``), not to a session TTL: session TTLs are at least 10 s and
are reaped only after up to twice that, whereas a TTL check goes critical ``check_ttl`` after the last
heartbeat. A dead or frozen leader therefore loses its session within ``check_ttl``; Consul then releases
``leader`` and holds it for ``lock_delay`` before anyone may take it, so the old leader has time to notice.

Standbys block on the ``leader`` key (a blocking query) and try to acquire whenever it is free. A
standby's query is stale (its local server's replica answers): a consistent one goes to the Raft leader,
and one in flight when the leader's host dies hung ~10 s after a new Raft leader was elected (on the
fleet: the new controller led 14 s after the gateway host's power-off instead of ~4 s). Acquiring is a
write, so the stale wake-up decides nothing. The leader blocks on the same key (consistent) and steps
down as soon as it names another session; the reconcile pass
also steps down when a guarded write is refused (``step_down``). Every KV write of the leader carries
``lock.guard()``, so even a leader that has not noticed yet cannot change anything.

Restarts and freezes. The check id is unique to the process (``meshop-controller-<id>:ttl:<random>``)
and registered with ``replace-existing-checks``: a controller started again with the same ``--id``
removes the check its dead predecessor's session hangs on, which invalidates that session at once, and
destroys any session still named after its id (a predecessor on another Consul agent). It never
inherits a dead process's lock, so nobody waits on one. "Leader" on ``/readyz`` (``confirmed``) is a
lease: it holds only until ``lock_delay`` after the last heartbeat that was followed by a read showing
the ``leader`` key still held by this session. No other controller can acquire the key sooner (its
session cannot die before that heartbeat was sent, and Consul holds the key for ``lock_delay`` after),
so a frozen, resumed or cut-off controller stops claiming leadership before anyone else can claim it.

The same election, with another ``Office`` (lock key and service name), elects the one active
``meshop acl sync --watch`` among those on the server hosts (``meshop/client/acl.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from meshop import metrics
from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.sessions import Lock, Sessions
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.keys import DEFAULT_PREFIX

log = logging.getLogger(__name__)
ACQUIRE_TIMEOUT = 2.0  # seconds for one session create / acquire / destroy (see LeaderElection.__init__)

SERVICE_NAME = "meshop-controller"


@dataclass(frozen=True)
class Office:
    """What is elected: the lock key, the Consul service its candidates register (with their TTL check,
    which their sessions hang on), the metrics label, and whether ``meshop_leader`` follows it (the
    controller's gauge; another office's holder must not claim to lead the controllers)."""

    key: str = keys.LEADER
    service: str = SERVICE_NAME
    component: str = "controller"
    gauge: bool = True


CONTROLLER = Office()


def holder_service_id(service: str, prefix: str, holder_id: str) -> str:
    """``<service>-<id>``; under another KV prefix ``<service>-<prefix>-<id>`` (see ``controller_service_id``)."""
    if prefix == DEFAULT_PREFIX:
        return f"{service}-{holder_id}"
    slug = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in prefix)
    return f"{service}-{slug}-{holder_id}"


def controller_service_id(prefix: str, controller_id: str) -> str:
    """``meshop-controller-<id>``; under another KV prefix ``meshop-controller-<prefix>-<id>``. Two meshop
    installations sharing a Consul agent (staging and production prefixes, both controllers defaulting
    to the host name as id) would otherwise register the same service: each replaced the other's check
    and destroyed the other's session ("named after its id"), and neither stayed leader."""
    return holder_service_id(SERVICE_NAME, prefix, controller_id)


class LeaderElection:
    def __init__(
        self,
        store: KVStore,
        services: Services,
        controller_id: str,
        *,
        lock_delay: int = 1,
        check_ttl: float = 3.0,
        wait: str = "30s",
        retry_interval: float = 0.1,
        address: str = "127.0.0.1",
        port: int = 0,
        on_change: Callable[[Lock | None], None] | None = None,
        heartbeat_services: Services | None = None,
        confirm_store: KVStore | None = None,
        office: Office = CONTROLLER,
    ) -> None:
        self.store = store
        self.confirm_store = confirm_store or KVStore(store.config)
        # Taking the lock gets a short timeout of its own: a write a standby sends while its server still
        # names the dead leader is forwarded there and hangs until that connection dies (~8 s on the
        # systemd install test: a new Raft leader at +3.5 s, the lock taken at +11.3 s). Abandoned after
        # ACQUIRE_TIMEOUT, the next try reaches the new leader.
        self.sessions = Sessions(KVStore(replace(store.config, timeout=min(store.config.timeout, ACQUIRE_TIMEOUT))))
        self.services = services
        self.heartbeat_services = heartbeat_services or services
        self.controller_id = controller_id
        self.office = office
        self.service_id = holder_service_id(office.service, store.prefix, controller_id)
        self.check_id = f"{self.service_id}:ttl:{secrets.token_hex(4)}"  # unique to this process
        self.lock_delay = lock_delay
        self.check_ttl = check_ttl
        self.wait = wait
        self.retry_interval = retry_interval
        self.address = address
        self.port = port
        self.on_change = on_change
        self.connected = False
        self.elections = 0
        self._session: str | None = None
        self._lock: Lock | None = None
        self._lease_until = 0.0  # monotonic: "leader" is confirmed until then
        self._cleaned = False  # sessions of an earlier process with this id destroyed
        self._mu = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def lock(self) -> Lock | None:
        """The held lock, or None while standing by."""
        with self._mu:
            return self._lock

    @property
    def is_leader(self) -> bool:
        return self.lock is not None

    @property
    def confirmed(self) -> bool:
        """Holding the lock AND within the lease of the last confirmation (see the module docstring)."""
        with self._mu:
            return self._lock is not None and time.monotonic() < self._lease_until

    def _lease_span(self) -> float:
        # No other controller can take the key within lock-delay of our session's death; without a
        # lock-delay only the check TTL is left (a dying Consul node could end the session sooner).
        return 0.9 * (self.lock_delay if self.lock_delay > 0 else self.check_ttl)

    def start(self, *, wait_for_consul: bool = False) -> LeaderElection:
        """Register, then run. ``wait_for_consul``: a failed first registration is logged, not raised; the
        heartbeat registers again until Consul answers (a standby started while a server host dies)."""
        try:
            self._register()
        except ConsulError as exc:
            if not wait_for_consul:
                raise
            log.warning("%s: cannot register yet (%s); retrying", self.office.component, exc)
        for target, name in ((self._heartbeat, "heartbeat"), (self._run, "election")):
            thread = threading.Thread(target=target, name=f"{self.office.component}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Release the lock (no lock-delay for others), destroy the session, deregister; best effort."""
        self._stopping.set()
        with self._mu:
            lock, self._lock = self._lock, None
        self._gauge(0)
        session, self._session = self._session, None
        try:
            if lock is not None:
                self.sessions.release(lock)
                log.info("%s: released leadership", self.office.component)
            if session is not None:
                self.sessions.destroy(session)
        except ConsulError as exc:
            log.warning("could not release the leader lock cleanly: %s", exc)
        try:
            self.services.deregister(self.service_id)
        except ConsulError as exc:
            log.warning("could not deregister %s: %s", self.service_id, exc)

    def step_down(self, lock: Lock, reason: str) -> None:
        """Give up ``lock`` now (a guarded write was refused); a no-op if it is no longer ours anyway."""
        self._lose(lock, reason)

    # --- threads ------------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            interval = max(0.1, self.check_ttl / 3)
            if self.lock is not None:  # renew the lease well before it lapses
                interval = max(0.1, min(interval, self._lease_span() / 3))
            try:
                sent = time.monotonic()
                self.heartbeat_services.ttl_pass(self.check_id, f"{self.office.component} {self.controller_id} alive")
                self._confirm(sent)
            except ConsulError as exc:
                log.warning("heartbeat failed: %s; registering again", exc)
                metrics.consul_errors_total.labels(self.office.component, "heartbeat").inc()
                with contextlib.suppress(ConsulError):
                    self._register()
            self._stopping.wait(interval)

    def _confirm(self, sent: float) -> None:
        """While leading: read ``leader``; ours -> extend the lease from ``sent``; not ours -> step down."""
        lock = self.lock
        if lock is None:
            return
        entry = self.confirm_store.get(self.office.key)
        holder = entry.session if entry else None
        if holder != lock.session:
            self._lose(lock, f"the leader key is now held by {holder or 'nobody'}")
            return
        with self._mu:
            if self._lock == lock:
                self._lease_until = max(self._lease_until, sent + self._lease_span())

    def _run(self) -> None:
        index = 0
        while not self._stopping.is_set():
            try:
                if self.lock is None:
                    self._try_acquire()
                standing_by = self.lock is None  # a standby's wake-up may be stale; a leader's check never
                wait = self.wait if index else None
                new_index, entry = self.store.get_blocking(self.office.key, index, wait, stale=standing_by)
                self.connected = True
                holder = entry.session if entry else None
                lock = self.lock
                if lock is not None and holder != lock.session:
                    self._lose(lock, f"the leader key is now held by {holder or 'nobody'}")
                if holder is None and self.lock is None:
                    index = 0  # free, maybe within lock-delay: retry shortly instead of blocking
                    self._stopping.wait(self.retry_interval)
                else:
                    index = new_index if new_index >= index else 0
            except ConsulError as exc:
                self.connected = False
                metrics.consul_errors_total.labels(self.office.component, "election").inc()
                log.warning("leader election: %s", exc)
                index = 0
                self._stopping.wait(1.0)

    def _try_acquire(self) -> None:
        if not self._cleaned:  # an earlier process with our id died holding a session: end it now
            for stale in self.sessions.named(self.service_id):
                if stale != self._session:
                    who = f"{self.office.component} {self.controller_id}"
                    log.info("destroying session %s left by an earlier %s", stale, who)
                    self.sessions.destroy(stale)
            self._cleaned = True
        if self._session is None or not self.sessions.alive(self._session):
            self._session = self.sessions.create(
                self.service_id, checks=[self.check_id], lock_delay=round(self.lock_delay)
            )
        value = json.dumps(
            {"id": self.controller_id, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()},
            sort_keys=True,
        )
        sent = time.monotonic()
        lock = self.sessions.acquire(self.office.key, self._session, value)
        if lock is None or self._stopping.is_set():
            return
        with self._mu:
            self._lock = lock
            self._lease_until = sent + self._lease_span()
        self.elections += 1
        self._gauge(1)
        log.info("%s: acquired leadership (session %s)", self.office.component, lock.session)
        if self.on_change:
            self.on_change(lock)

    def _lose(self, lock: Lock, reason: str) -> None:
        with self._mu:
            if self._lock is None or self._lock != lock:
                return
            self._lock = None
            self._lease_until = 0.0
        if self.on_change:  # first: by the time the gauge says "not leader", nothing leader-only remains
            self.on_change(None)
        self._gauge(0)
        log.warning("%s: lost leadership: %s; standing by", self.office.component, reason)
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(ConsulError):  # a live session must not keep (or retake) the lock
                self.sessions.destroy(session)

    def _gauge(self, value: int) -> None:
        if self.office.gauge:
            metrics.leader.set(value)

    def _register(self) -> None:
        check = CheckSpec(
            self.check_id,
            f"{self.office.component} {self.controller_id} heartbeat",
            ttl=f"{int(self.check_ttl * 1000)}ms",
            deregister_after="1m",
            initial_status="passing",
        )
        self.services.register(
            Registration(
                self.service_id,
                self.office.service,
                self.address,
                self.port,
                meta={"id": self.controller_id},
                checks=(check,),
                replace_checks=True,  # an earlier process's check goes, and with it that process's session
            )
        )
