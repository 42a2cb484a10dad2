"""The node's presence in Consul: its ``nodes/<node>`` record, the ``meshop-agent`` TTL heartbeat and
the ``meshop-metrics-agent-<node>`` registration Prometheus discovers the agent by.

Runs on its own thread so a slow reconcile pass never makes the node look dead. Every ``interval``
seconds it passes the TTL check; when that fails (Consul restarted and forgot the registration, or
was unreachable) it registers again and rewrites the node record once Consul answers. ``last_contact``
is the time Consul last answered, for ``/readyz``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meshop import metrics
from meshop.agent.cluster.registrations import AGENT_SERVICE, agent_check_id, agent_service_id
from meshop.consul.services import CheckSpec, Registration, Services, metrics_registration
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
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
    ) -> None:
        self.store = store
        self.services = services
        self.record = record
        self.port = port
        self.metrics_listen = metrics_listen
        self.ttl = ttl
        self.interval = interval
        self.last_contact: float | None = None  # time.monotonic() of Consul's last answer
        self.registered = False
        self.beats = 0
        self._written = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> NodePresence:
        self._thread.start()
        return self

    def stop(self, deregister: bool = True) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        if deregister:
            node = self.record().name
            ids = [agent_service_id(node)]
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

    def beat(self) -> None:
        """One heartbeat (also called by tests): register if needed, pass the TTL, refresh the record."""
        record = self.record()
        try:
            if not self.registered:
                self._register(record)
            else:
                self.services.ttl_pass(agent_check_id(record.name), note="agent alive")
            content = dumps(record)
            if content != self._written:
                self.store.put(keys.node(record.name), content)
                self._written = content
        except ConsulError as exc:
            metrics.consul_errors_total.labels("agent", "heartbeat").inc()
            if self.registered or self.beats == 0:
                log.warning("heartbeat failed: %s", exc)
            self.registered = False
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
            initial_status="passing",
        )
        self.services.register(
            Registration(
                agent_service_id(record.name),
                AGENT_SERVICE,
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
        log.info("registered %s with a %gs TTL check", agent_service_id(record.name), self.ttl)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.interval)
