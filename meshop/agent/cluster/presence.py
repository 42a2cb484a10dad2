"""The node's presence in Consul: its ``nodes/<node>`` record, the ``meshop-agent-<node>`` TTL heartbeat and
the ``meshop-metrics-agent-<node>`` registration Prometheus discovers the agent by.

Runs on its own thread so a slow reconcile pass never makes the node look dead. Every ``interval``
seconds it passes the TTL check; when that fails (Consul restarted and forgot the registration, or
was unreachable) it registers again and rewrites the node record once Consul answers. ``last_contact``
is the time Consul last answered, for ``/readyz``.

**Reporting back only once settled.** The controller counts a node Ready when its record exists and this
check passes; a node it declared NotReady must also have rewritten its record since it turned unhealthy
(``operator/nodes.py``). So after the agent starts, and after any moment it may have been lost (a failed
beat: each beat makes one consistent read, since the local Consul agent answers the TTL calls even when
cut off from the servers; or a beat more than ``ttl`` after the last: the agent was frozen), the check
is held critical and the record is not (re)written until a reconcile pass with Consul answering has
*acted* (``passes()`` counts them): a node back from a power loss or a partition has then removed its
stale copies (its engine restarts them at boot; the replicas run elsewhere now). The check is
registered ``critical`` (Consul keeps a re-registered check's status) and failed once explicitly (the
catalog may still hold it passing from before the loss). Once the count moves, the check passes and the
record is written, even unchanged, so its ModifyIndex moves. ``poke()`` beats at once (the daemon pokes
after each pass while waiting), and a waiting beat that reaches the servers calls ``wake()`` so a pass
runs now rather than at the next resync. The check (not the record) also passes after ``ttl`` seconds of
waiting, so a first pass that takes long never costs a node that was not lost its work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meshop import metrics
from meshop.consul.services import CheckSpec, Registration, Services, metrics_registration
from meshop.consul.store import KVStore
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.agents import agent_check_id, agent_service
from meshop.model.records import NodeRecord, dumps

log = logging.getLogger(__name__)


class NodePresence:
    def __init__(
        self,
        store: KVStore,
        services: Services,
        record: Callable[[], NodeRecord],
        *,
        port: int = 0,
        metrics_listen: str | None = None,
        ttl: float = 10.0,
        interval: float = 3.0,
        passes: Callable[[], int] = lambda: 1,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.services = services
        self.record = record
        self.port = port
        self.metrics_listen = metrics_listen
        self.ttl = ttl
        self.interval = interval
        self.passes = passes  # reconcile passes that acted with Consul answering (the daemon's count)
        self.wake = wake
        self.need = 0  # passes() must exceed this before the node reports back
        self.waiting_since = time.monotonic()  # since when the node waits to report back
        self.reported = False  # the record was written since the agent started or last lost Consul
        self.held = False  # the check was failed on purpose while waiting
        self.last_contact: float | None = None  # time.monotonic() of Consul's last answer
        self.registered = False
        self.beats = 0
        self._written = ""
        self._wake = threading.Event()
        self._thread = DaemonThread("heartbeat", self._run, on_stop=self._wake.set)

    def start(self) -> NodePresence:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Beat now instead of at the end of the current interval (a pass has just acted)."""
        self._wake.set()

    def stop(self, deregister: bool = True) -> None:
        self._thread.stop(self.interval + 5)
        if deregister:
            node = self.record().name
            ids = [agent_service(node)]
            if self.metrics_listen:
                ids.append(metrics_registration("agent", node, self.metrics_listen, node).service_id)
            for service_id in ids:
                try:
                    self.services.deregister(service_id)
                    log.info("deregistered %s", service_id)
                except ConsulError as exc:
                    log.warning("could not deregister %s: %s", service_id, exc)

    def contact_age(self) -> float | None:
        return None if self.last_contact is None else time.monotonic() - self.last_contact

    @property
    def settled(self) -> bool:
        """A pass with Consul answering has acted since the agent started or last lost Consul."""
        return self.passes() > self.need

    def beat(self) -> None:
        """One heartbeat (also called by tests): register if needed, pass (or hold) the TTL, report back."""
        record = self.record()
        check = agent_check_id(record.name)
        lapsed = self.last_contact is not None and time.monotonic() - self.last_contact > self.ttl
        if lapsed and self.reported:  # frozen or starved past the TTL: the node may have been declared lost
            self.need, self.waiting_since, self.reported = self.passes(), time.monotonic(), False
        try:
            if not self.registered:
                self._register(record)
            settled = self.settled
            if settled or time.monotonic() - self.waiting_since >= self.ttl:
                self.services.ttl_pass(check, note="agent alive")
            elif not self.held:
                self.services.ttl_fail(check, note="agent starting or back: no reconcile pass yet")
                self.held = True
            content = dumps(record)
            if settled and (not self.reported or content != self._written):
                self.store.put(keys.node(record.name), content)
                self._written, self.reported, self.held = content, True, False
            else:
                self.store.get(keys.node(record.name))  # the servers answer (the local agent always does)
                if not settled:
                    self.wake()
        except ConsulError as exc:
            metrics.consul_errors_total.labels("agent", "heartbeat").inc()
            if self.registered or self.beats == 0:
                log.warning("heartbeat failed: %s", exc)
            self.registered = False
            if self.reported:  # report back only after a pass that follows this loss of contact
                self.need, self.waiting_since = self.passes(), time.monotonic()
            self.reported = self.held = False
            self._written = ""
            return
        finally:
            self.beats += 1
        self.last_contact = time.monotonic()

    def _register(self, record: NodeRecord) -> None:
        check = CheckSpec(
            agent_check_id(record.name),
            "meshop agent heartbeat",
            ttl=f"{self.ttl:g}s",
            initial_status="critical",  # passing only once settled (module docstring)
        )
        self.services.register(
            Registration(
                agent_service(record.name),  # id and name: a name only this node's token may write
                agent_service(record.name),
                record.address,
                self.port,
                meta={"node": record.name, "version": record.version},
                checks=(check,),
            )
        )
        if self.metrics_listen:  # so Prometheus finds this agent (charts/monitoring/prometheus.yml)
            self.services.register(
                metrics_registration("agent", record.name, self.metrics_listen, record.name, record.address)
            )
        self.registered = True
        log.info("registered %s with a %gs TTL check", agent_service(record.name), self.ttl)

    def _run(self) -> None:
        stopping = self._thread.stopping
        while not stopping.is_set():
            self.beat()
            self._wake.wait(self.interval)
            self._wake.clear()
