"""Consul service catalog and health: registrations with checks, TTL heartbeats, health queries.

Agents register each running replica (so ``<service>.service.consul`` and ``/v1/health/service``
find only healthy ones) and themselves (a TTL check the controller watches for node loss).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meshop import metrics
from meshop.consul.client import (
    consul,  # py-consul, loaded the lean way (meshop.libs)
    consul_errors,
)
from meshop.consul.config import ConsulConfig
from meshop.consul.http import index_header
from meshop.errors import ConsulError
from meshop.model.acl import metrics_service
from meshop.model.agents import is_agent_service_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckSpec:
    """A health check for a registration: exactly one of ``ttl``, ``http`` or ``tcp``."""

    check_id: str
    name: str
    ttl: str | None = None
    http: str | None = None
    tcp: str | None = None
    interval: str = "10s"
    timeout: str = "2s"
    deregister_after: str | None = None
    initial_status: str = "critical"

    def as_api(self) -> dict[str, object]:
        body: dict[str, object] = {"CheckID": self.check_id, "Name": self.name, "Status": self.initial_status}
        if self.ttl:
            body["TTL"] = self.ttl
        elif self.http:
            body.update(HTTP=self.http, Interval=self.interval, Timeout=self.timeout)
        elif self.tcp:
            body.update(TCP=self.tcp, Interval=self.interval, Timeout=self.timeout)
        if self.deregister_after:
            body["DeregisterCriticalServiceAfter"] = self.deregister_after
        return body


@dataclass(frozen=True)
class Registration:
    """A service instance as meshop registers it with the local Consul agent."""

    service_id: str
    name: str
    address: str
    port: int
    meta: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    replace_checks: bool = False  # drop checks of an earlier registration of this id that ``checks`` lacks


@dataclass(frozen=True)
class CheckState:
    """One health check's state as the catalog reports it."""

    node: str
    check_id: str
    service_id: str
    service_name: str
    status: str
    output: str = ""


@dataclass(frozen=True)
class InstanceHealth:
    """One registered instance of a service and the worst status of all its checks, the node's included.

    The node's own checks matter: when a whole machine dies, its Consul agent cannot mark its service
    checks critical any more, but the servers mark the node's ``serfHealth`` critical.
    """

    node: str  # the Consul node it is registered on
    service_id: str
    meta: Mapping[str, str]
    status: str  # passing | warning | critical
    output: str = ""
    address: str = ""  # the Consul node's own address (the catalog's, not what the service claims)
    service_address: str = ""  # what the registration claims (a gateway's advertised address)
    service_name: str = ""


@dataclass(frozen=True)
class HealthView:
    """Every check in the datacenter and, built from the same answer, every agent's registration
    (``agent_instances``): one blocking query serves both the replicas' health and the nodes'."""

    checks: list[CheckState]
    agents: list[InstanceHealth]


class Services:
    """Service registration on the local Consul agent, and health reads from the catalog."""

    def __init__(self, config: ConsulConfig, client: consul.Consul) -> None:
        self.config = config
        self.client = client

    def register(self, reg: Registration) -> None:
        checks = [check.as_api() for check in reg.checks]
        with consul_errors(self.config, f"registering service {reg.service_id}"):
            self.client.agent.service.register(
                reg.name,
                service_id=reg.service_id,
                address=reg.address,
                port=reg.port,
                tags=list(reg.tags),
                meta=dict(reg.meta),
                check=checks[0] if checks else None,
                extra_checks=checks[1:],
                replace_existing_checks=reg.replace_checks,
            )

    def deregister(self, service_id: str) -> None:
        with consul_errors(self.config, f"deregistering service {service_id}"):
            self.client.agent.service.deregister(service_id)

    def maintenance(self, service_id: str, enable: bool, reason: str = "") -> None:
        """Consul's maintenance mode for one local registration: its health is critical while on."""
        with consul_errors(self.config, f"setting maintenance of {service_id}"):
            self.client.agent.service.maintenance(service_id, enable, reason or None)

    def local(self) -> dict[str, dict]:
        """Services registered on the local agent, by service id."""
        with consul_errors(self.config, "listing local services"):
            return dict(self.client.agent.services())

    def local_service_health(self) -> dict[str, str]:
        """The worst status of each local service's checks, by service id (one call to the local agent).

        A service whose checks all pass is ``passing``; one without checks is absent."""
        with consul_errors(self.config, "listing local checks"):
            raw = self.client.agent.checks()
        order = {"passing": 0, "warning": 1, "critical": 2}
        worst: dict[str, str] = {}
        for body in dict(raw or {}).values():
            sid, status = str((body or {}).get("ServiceID") or ""), str((body or {}).get("Status") or "critical")
            if sid and order.get(status, 2) >= order.get(worst.get(sid, "passing"), 2):
                worst[sid] = status if status in order else "critical"
        return worst

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        with consul_errors(self.config, f"passing check {check_id}"):
            self.client.agent.check.ttl_pass(check_id, notes=note or None)

    def ttl_fail(self, check_id: str, note: str = "") -> None:
        with consul_errors(self.config, f"failing check {check_id}"):
            self.client.agent.check.ttl_fail(check_id, notes=note or None)

    def checks(self, service: str, index: int = 0, wait: str | None = None) -> tuple[int, list[CheckState]]:
        """Every check of ``service`` across the cluster; blocking when ``index`` > 0."""
        with consul_errors(self.config, f"reading checks of {service}"):
            new_index, raw = self.client.health.checks(service, index=index or None, wait=wait)
        return index_header(new_index), [c for c in map(_check_state, raw or ()) if c is not None]

    def all_checks(self, index: int = 0, wait: str | None = None) -> tuple[int, list[CheckState]]:
        """Every check in the datacenter (``/v1/health/state/any``), node checks included; blocking when
        ``index`` > 0."""
        with consul_errors(self.config, "reading every health check"):
            new_index, raw = self.client.health.state("any", index=index or None, wait=wait)
        return index_header(new_index), [c for c in map(_check_state, raw or ()) if c is not None]

    def instances(self, service: str, index: int = 0, wait: str | None = None) -> tuple[int, list[InstanceHealth]]:
        """Every instance of ``service`` with its health (service and node checks); blocking when ``index`` > 0."""
        with consul_errors(self.config, f"reading health of {service}"):
            new_index, raw = self.client.health.service(service, index=index or None, wait=wait)
        return index_header(new_index), [i for i in map(_instance, raw or ()) if i is not None]

    def agents(self, index: int = 0, wait: str | None = None) -> tuple[int, list[InstanceHealth]]:
        """Every registration that may be an agent's own, with its health and its Consul node's catalog
        address (``agent_instances``); blocking on every check in the datacenter when ``index`` > 0.
        Which of them speaks for which node is the reader's choice (``meshop.model.agents.own_entries``)."""
        new_index, view = self.health(index, wait)
        return new_index, view.agents

    def health(self, index: int = 0, wait: str | None = None) -> tuple[int, HealthView]:
        """Every check and every agent's registration from one read of every check (``HealthView``);
        blocking when ``index`` > 0."""
        new_index, checks = self.all_checks(index, wait)
        return new_index, HealthView(checks, agent_instances(checks, self.node_addresses()))

    def node_addresses(self) -> dict[str, str]:
        """Consul node -> the address the catalog holds for it."""
        with consul_errors(self.config, "listing the catalog's nodes"):
            _, raw = self.client.catalog.nodes()
        found = {}
        for item in raw or ():
            node, address = _text(item, "Node"), _text(item, "Address")
            if node and address is not None:
                found[node] = address
        return found

    def passing(self, service: str) -> list[dict]:
        """Healthy instances of ``service`` (``/v1/health/service/<name>?passing``)."""
        with consul_errors(self.config, f"reading health of {service}"):
            _, raw = self.client.health.service(service, passing=True)
        return list(raw or ())


def _text(data: object, key: str) -> str | None:
    """``data[key]`` when ``data`` is an object and that is a string ("" when absent), else None.

    Consul's answers always have these shapes; the parsers below still never coerce (``str(x)``) what a
    service registration carries, and skip an entry of another shape instead of failing the whole read.
    """
    value = data.get(key, "") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _check_state(item: object) -> CheckState | None:
    fields = [_text(item, k) for k in ("Node", "CheckID", "ServiceID", "ServiceName", "Status", "Output")]
    if any(f is None for f in fields):
        return None
    node, check_id, service_id, service_name, status, output = (f or "" for f in fields)
    return CheckState(node, check_id, service_id, service_name, status, output[:500])


_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}


def _instance(item: object) -> InstanceHealth | None:
    node = item.get("Node") if isinstance(item, dict) else None
    service = (item.get("Service") or {}) if isinstance(item, dict) else None
    checks = (item.get("Checks") or []) if isinstance(item, dict) else None
    meta = (service.get("Meta") or {}) if isinstance(service, dict) else None
    texts = [_text(node, "Node"), _text(node, "Address"), _text(service, "ID"), _text(service, "Address")]
    name = _text(service, "Service")
    if name is None or any(t is None for t in texts) or not isinstance(meta, dict) or not isinstance(checks, list):
        return None
    if not all(isinstance(v, str) for v in meta.values()):
        return None
    states = [(_text(c, "Status"), _text(c, "Output")) for c in checks]
    if any(status is None or output is None for status, output in states):
        return None
    node_name, address, service_id, service_address = (t or "" for t in texts)
    worst = max(states, key=lambda c: _SEVERITY.get(c[0] or "", 2), default=None)
    status = (worst[0] or "critical") if worst else "passing"
    return InstanceHealth(
        node=node_name,
        service_id=service_id,
        meta=dict(meta),
        status=status if status in _SEVERITY else "critical",
        output=(worst[1] or "")[:500] if worst and status != "passing" else "",
        address=address,
        service_address=service_address[:255],
        service_name=name,
    )


def agent_instances(checks: Iterable[CheckState], addresses: Mapping[str, str]) -> list[InstanceHealth]:
    """Every registration that may be an agent's own (``meshop.model.agents``), built from every check
    in the datacenter: the worst of its checks and its Consul node's own (``serfHealth``: a machine that
    is gone cannot fail its agent's TTL check), and ``addresses`` (Consul node -> its catalog address).

    Agents register one name per node, so their health is not one service's: reading it from
    ``/v1/health/state/any`` is one blocking query for all of them, whatever the number of nodes. A
    registration without a check of its own is no agent's (an agent always has its TTL heartbeat)."""
    checks = list(checks)
    node_checks: dict[str, list[CheckState]] = {}
    for check in checks:
        if not check.service_id:
            node_checks.setdefault(check.node, []).append(check)
    grouped: dict[tuple[str, str, str], list[CheckState]] = {}
    for check in checks:
        if check.service_id and is_agent_service_name(check.service_name):
            grouped.setdefault((check.node, check.service_id, check.service_name), []).append(check)
    found = []
    for (node, service_id, name), own in grouped.items():
        states = own + node_checks.get(node, [])
        worst = max(states, key=lambda c: _SEVERITY.get(c.status, 2))
        status = worst.status if worst.status in _SEVERITY else "critical"
        output = worst.output if status != "passing" else ""
        found.append(InstanceHealth(node, service_id, {}, status, output, addresses.get(node, ""), "", name))
    return found


WILDCARDS = ("0.0.0.0", "::")


def metrics_registration(
    component: str, instance: str, listen: str, node: str = "", advertise: str = ""
) -> Registration:
    """The metrics service a daemon registers so Prometheus finds it via consul_sd_configs, under the name
    only its role may register (``metrics_service``: ``meshop-metrics-agent-<node>`` for an agent).

    Address and port are the daemon's ``/metrics`` listener; tag and meta carry the component. A
    listener on every interface (``0.0.0.0``) is not an address anyone can scrape: the registration
    then names ``advertise``, or no address at all, which makes Consul (and Prometheus) use the
    Consul node's own address.
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    meta = {"component": component, "instance": instance}
    if node:
        meta["node"] = node
    name = metrics_service(component, node if component == "agent" else "")
    return Registration(
        # ``<name>.<instance>``: never an id of the shared ``meshop-metrics`` name of older versions
        # (``meshop-metrics-<component>-<instance>``), which Consul would let no one replace without write
        # on that old name, which no role has any more (an old daemon stopped after `acl init` leaves one)
        service_id=f"{name}.{instance}",
        name=name,
        address=advertise if host in WILDCARDS else (host or "127.0.0.1"),
        port=int(port),
        meta=meta,
        tags=(component,),
    )


class KeptRegistration:
    """One registration a daemon keeps in Consul: ``ensure`` on every pass registers it until Consul has
    taken it (so a daemon started while Consul was down still becomes discoverable), ``withdraw`` on a
    clean stop. A failure is logged and counted, never fatal: the daemon's real work matters more."""

    def __init__(self, services: Services, registration: Registration, component: str) -> None:
        self.services = services
        self.registration = registration
        self.component = component
        self.registered = False

    def ensure(self) -> None:
        if self.registered:
            return
        try:
            self.services.register(self.registration)
            self.registered = True
        except ConsulError as exc:
            metrics.consul_errors_total.labels(self.component, "registration").inc()
            log.warning("could not register %s (retrying next pass): %s", self.registration.service_id, exc)

    def withdraw(self) -> None:
        try:
            self.services.deregister(self.registration.service_id)
            self.registered = False
        except ConsulError as exc:
            log.warning("could not deregister %s: %s", self.registration.service_id, exc)
