"""Consul registrations of the replicas this node serves, kept equal to the plan's ``serving`` map.

One registration per replica: name = service, id ``meshop-<node>-<service>-<replica>``, address = the
node's advertise address, port = the container's host port, meta ``node``, ``service``, ``replica``,
``generation``, ``specHash`` and ``container`` (so switching a replica to a new container is a
re-registration even when the port stays), and the checks from the spec. A registration starts
``passing`` when the agent's own probe already passed (so a start-first switch never leaves a gap) and
``critical`` otherwise. Registrations of this node that no replica needs are deregistered.

An HTTP health check is never handed to Consul as an HTTP check: Consul 1.8 follows redirects, so a
container answering ``302 Location: http://127.0.0.1:8500/...`` would make the Consul agent fetch any
URL it can reach (and show the answer in the check's output). Instead the replica gets a TCP check
(Consul's own view of the port) and a TTL check that carries the verdict of the agent's HTTP probe,
which never follows redirects (``report``). Trade-off: while the agent is down for longer than
``PROBE_TTL`` its HTTP-checked replicas turn critical in Consul (their TCP checks keep running).

A Consul service name is meshop's only while every instance of it is a meshop replica (id ``meshop-…``
with ``service`` and ``replica`` meta): before a replica's first registration the agent reads the
catalog, and when anything else (a database registered by hand, Consul's own ``consul``) already uses the
name, it does not register and says so (``refused``), so a Service cannot join a Consul service meshop
does not own. Service names ``meshop-*`` are reserved by validation, so no replica joins meshop's own.

``promoted`` remembers when each container became its replica's registered one (monotonic time); the
planner removes the container it replaced only ``drain`` seconds later, so clients that just resolved
the old address still reach it. ``follow`` is the pass's step: registrations and verdicts from the
plan's ``serving`` map.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from meshop.agent.planning.desired import host_port, primary_port
from meshop.agent.planning.labels import replica_service_id
from meshop.agent.planning.plan import Container, Note, ReplicaKey
from meshop.consul.services import CheckSpec, InstanceHealth, Registration
from meshop.model import ServiceSpec

log = logging.getLogger(__name__)

PROBE_TTL = 90.0  # seconds an HTTP verdict stays valid in Consul without the agent renewing it
PROBE_REFRESH = 20.0  # the agent renews each verdict at least this often


def foreign_instances(name: str, instances: Iterable[InstanceHealth]) -> list[str]:
    """Ids of the instances of Consul service ``name`` that are not meshop replicas of a Service ``name``."""
    return sorted(
        i.service_id
        for i in instances
        if not (i.service_id.startswith("meshop-") and i.meta.get("service") == name and "replica" in i.meta)
    )


def probe_check_id(service_id: str) -> str:
    return f"{service_id}:health"


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def replica_registration(
    node: str,
    address: str,
    service: str,
    replica: int,
    container: Container,
    spec: ServiceSpec,
    primary: tuple[int, str] | None,
    healthy: bool | None,
) -> Registration:
    service_id = replica_service_id(node, service, replica)
    port = host_port(container, *primary, spec) if primary else None
    checks: tuple[CheckSpec, ...] = ()
    health = spec.health
    if health is not None:
        check_port = host_port(container, health.port, "tcp", spec)
        status = "passing" if healthy else "critical"
        common = dict(interval=_duration(health.interval), timeout=_duration(health.timeout), initial_status=status)
        if health.kind == "http":
            name = f"{service} replica {replica}: the agent's GET {health.path or '/'} (redirects not followed)"
            checks = (
                CheckSpec(probe_check_id(service_id), name, ttl=f"{PROBE_TTL:g}s", initial_status=status),
                CheckSpec(
                    f"{service_id}:tcp", f"{service} replica {replica} port", tcp=f"{address}:{check_port}", **common
                ),
            )
        else:
            checks = (
                CheckSpec(
                    f"{service_id}:health", f"{service} replica {replica}", tcp=f"{address}:{check_port}", **common
                ),
            )
    meta = {
        "node": node,
        "service": service,
        "replica": str(replica),
        "generation": str(container.generation),
        "specHash": container.spec_hash,
        "container": container.id[:12],
    }
    if health is not None and health.kind == "http":
        meta["probe"] = "agent"  # a registration made with a Consul HTTP check differs: re-registered
    return Registration(service_id, service, address, port or 0, meta=meta, checks=checks)


class Catalog(Protocol):
    """What the registrar uses of ``meshop.consul.services.Services`` (this node's Consul agent)."""

    def local(self) -> dict[str, dict[str, Any]]: ...

    def local_service_health(self) -> dict[str, str]: ...

    def register(self, reg: Registration, /) -> None: ...

    def deregister(self, service_id: str, /) -> None: ...

    def instances(self, service: str, /) -> tuple[int, list[InstanceHealth]]: ...

    def ttl_pass(self, check_id: str, /, note: str = "") -> None: ...

    def ttl_fail(self, check_id: str, /, note: str = "") -> None: ...


class ReplicaRegistrar:
    def __init__(
        self, services: Catalog, node: str, address: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.services = services
        self.node = node
        self.address = address  # the node's advertise address: every replica registers with it
        self.clock = clock  # monotonic: promotions and verdict renewals are durations
        self.promoted: dict[str, float] = {}  # container id -> when its replica's registration switched to it
        self.refused: dict[str, str] = {}  # service -> why its replicas are not registered
        self.renews = False  # some replica's HTTP verdict lives in a TTL check: renew it within PROBE_REFRESH
        self._reported: dict[str, tuple[bool, float]] = {}  # TTL check id -> (passing, when Consul was told)
        self._unregistered: set[str] = set()  # TTL check ids of refused registrations: nothing to report to

    def follow(
        self,
        serving: Mapping[ReplicaKey, str],
        containers: Iterable[Container],
        specs: Mapping[str, ServiceSpec],
        healthy: Mapping[str, bool],
    ) -> None:
        """Registrations equal to the plan's ``serving`` map, then the agent's HTTP verdicts reported.
        Raises ConsulError."""
        by_id = {c.id: c for c in containers}
        wanted: dict[str, tuple[Registration, str]] = {}
        for (service, replica), container_id in serving.items():
            spec = specs[service]
            reg = replica_registration(
                self.node,
                self.address,
                service,
                replica,
                by_id[container_id],
                spec,
                primary_port(spec),
                healthy.get(container_id) if spec.health else True,
            )
            wanted[replica_service_id(self.node, service, replica)] = (reg, container_id)
        self.sync(wanted)
        verdicts = {
            probe_check_id(sid): healthy.get(container_id) is True
            for sid, (reg, container_id) in wanted.items()
            if any(check.ttl for check in reg.checks)
        }
        self.report(verdicts)
        self.renews = bool(verdicts)

    def replica_checks(self, specs: Mapping[str, ServiceSpec]) -> dict[str, str]:
        """The worst check status of each local replica registration, only when some assigned service
        has a health check (its replicas are Ready only once every check passes in Consul)."""
        if not any(spec.health is not None for spec in specs.values()):
            return {}
        return self.services.local_service_health()

    def refusals(self) -> dict[str, Note]:
        """Why some services' replicas are not in Consul: their names belong to something else."""
        return {service: Note("ServiceNameTaken", why) for service, why in self.refused.items()}

    def sync(self, wanted: Mapping[str, tuple[Registration, str]]) -> int:
        """Make this node's replica registrations equal ``wanted`` (service id -> (registration,
        container id)); returns how many registrations changed. Raises ConsulError; what was done stays done."""
        local = self.services.local()
        ours = {
            sid: body
            for sid, body in local.items()
            if (body.get("Meta") or {}).get("node") == self.node and "replica" in (body.get("Meta") or {})
        }
        changes = 0
        owned: dict[str, bool] = {}
        self._unregistered = set()
        for sid, (reg, container_id) in sorted(wanted.items()):
            current = ours.get(sid)
            if current is None:
                if reg.name not in owned:
                    owned[reg.name] = self._owned(reg.name)
                if not owned[reg.name]:
                    self._unregistered.update(c.check_id for c in reg.checks if c.ttl)
                    continue
            if current is None or _differs(current, reg):
                self.services.register(reg)
                changes += 1
                for check in reg.checks:
                    if check.ttl:  # registering set its status
                        self._reported[check.check_id] = (check.initial_status == "passing", self.clock())
            self.promoted.setdefault(container_id, self.clock())
        for sid in sorted(set(ours) - set(wanted)):
            self.services.deregister(sid)
            changes += 1
        live = {c.check_id for reg, _ in wanted.values() for c in reg.checks if c.ttl}
        for check_id in set(self._reported) - live:
            del self._reported[check_id]
        for name in [n for n in self.refused if owned.get(n, True)]:
            del self.refused[name]  # now registered, or no longer wanted
        serving = {container_id for _, container_id in wanted.values()}
        for container_id in set(self.promoted) - serving:
            del self.promoted[container_id]
        return changes

    def _owned(self, name: str) -> bool:
        """Whether Consul service ``name`` may take this node's replicas (no foreign instance in it)."""
        _, instances = self.services.instances(name)
        foreign = foreign_instances(name, instances)
        if not foreign:
            return True
        why = f"Consul service {name!r} is not meshop's: it has other instances ({', '.join(foreign[:3])})"
        if self.refused.get(name) != why:
            log.error("not registering the replicas of %s: %s", name, why)
        self.refused[name] = why
        return False

    def report(self, verdicts: Mapping[str, bool]) -> int:
        """Tell Consul the agent's HTTP verdicts (TTL check id -> passing) that changed or are due for
        renewal; returns how many were sent. Raises ConsulError."""
        now = self.clock()
        sent = 0
        for check_id, passing in sorted(verdicts.items()):
            if check_id in self._unregistered:
                continue
            last = self._reported.get(check_id)
            if last is not None and last[0] == passing and now - last[1] < PROBE_REFRESH:
                continue
            if passing:
                self.services.ttl_pass(check_id, note="the agent's HTTP probe passed")
            else:
                self.services.ttl_fail(check_id, note="the agent's HTTP probe failed")
            self._reported[check_id] = (passing, now)
            sent += 1
        return sent


def _differs(current: Mapping[str, object], reg: Registration) -> bool:
    return (
        current.get("Service") != reg.name
        or current.get("Address") != reg.address
        or int(current.get("Port") or 0) != reg.port  # type: ignore[call-overload]
        or dict(current.get("Meta") or {}) != dict(reg.meta)  # type: ignore[call-overload]
    )
