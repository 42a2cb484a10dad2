"""The records meshop's own components exchange through Consul KV (not written by users).

Each record is a frozen dataclass with ``to_dict()`` (camelCase, JSON-safe) and ``from_dict()``; the
KV key each lives under is in ``meshop.model.keys``. Readers are lenient (missing optional fields take
defaults) so a newer writer and an older reader can coexist during an upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def dumps(record: Any) -> str:
    """Canonical JSON for a record: stable key order, so unchanged state rewrites identical bytes."""
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))


def loads_json(value: bytes | str) -> dict[str, Any]:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("record is not a JSON object")
    return data


@dataclass(frozen=True)
class Capacity:
    cpus: float = 0.0
    memory: int = 0  # bytes

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory": self.memory}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capacity:
        return cls(cpus=float(data.get("cpus", 0.0)), memory=int(data.get("memory", 0)))


@dataclass(frozen=True)
class NodeRecord:
    """``nodes/<node>``, written by the node's agent at start and refreshed when it changes."""

    name: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: Capacity = Capacity()
    version: str = ""
    started_at: float = 0.0
    metrics_addr: str = ""
    ingress_port: int = 0  # the node-local Caddy's HTTP port; 0 when the node runs no Caddy
    problem: str = ""  # why the agent holds back (e.g. it does not recognise the KV); "" when all is well

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "name": self.name,
            "address": self.address,
            "labels": dict(self.labels),
            "capacity": self.capacity.to_dict(),
            "version": self.version,
            "startedAt": self.started_at,
            "metricsAddr": self.metrics_addr,
            "ingressPort": self.ingress_port,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeRecord:
        return cls(
            name=str(data["name"]),
            address=str(data.get("address", "")),
            labels={str(k): str(v) for k, v in dict(data.get("labels") or {}).items()},
            capacity=Capacity.from_dict(data.get("capacity") or {}),
            version=str(data.get("version", "")),
            started_at=float(data.get("startedAt", 0.0)),
            metrics_addr=str(data.get("metricsAddr", "")),
            ingress_port=int(data.get("ingressPort", 0)),
            problem=str(data.get("problem", ""))[:500],
        )


@dataclass(frozen=True)
class Fence:
    """``fences/<node>``: the token the node's agent last confirmed in this KV (see ``meshop.agent.cluster.fence``).

    The agent writes a new random ``token`` (check-and-set) whenever its assignments change and
    remembers it on disk; ``adopt`` is set by ``meshop cluster adopt`` to tell the agent that this KV,
    whatever token it holds, is the right one.
    """

    node: str
    token: str = ""
    epoch: int = 0  # how many tokens the agent wrote here: for people reading the KV
    time: float = 0.0
    adopt: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "token": self.token, "epoch": self.epoch, "time": self.time, "adopt": self.adopt}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fence:
        return cls(
            node=str(data["node"]),
            token=str(data.get("token", "")),
            epoch=int(data.get("epoch", 0)),
            time=float(data.get("time", 0.0)),
            adopt=data.get("adopt") is True,
        )


@dataclass(frozen=True)
class Assignment:
    """``assignments/<node>/<service>``: what one node must run for one service, fully resolved.

    ``spec`` is ``ServiceSpec.to_dict()``; ``spec_hash`` identifies it (containers carry it as a label);
    ``generation`` is the ModifyIndex of the desired document it came from.
    """

    service: str
    node: str
    replicas: int
    generation: int
    spec_hash: str
    spec: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "node": self.node,
            "replicas": self.replicas,
            "generation": self.generation,
            "specHash": self.spec_hash,
            "spec": dict(self.spec),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assignment:
        return cls(
            service=str(data["service"]),
            node=str(data["node"]),
            replicas=int(data.get("replicas", 1)),
            generation=int(data.get("generation", 0)),
            spec_hash=str(data["specHash"]),
            spec=dict(data["spec"]),
        )


@dataclass(frozen=True)
class ContainerState:
    """One managed container as its agent sees it."""

    id: str
    name: str
    replica: int
    image: str
    state: str  # created | running | restarting | exited | dead | paused
    health: str  # passing | warning | critical | starting | none
    spec_hash: str
    restart_count: int = 0
    host_ports: Mapping[str, int] = field(default_factory=dict)  # "80/tcp" -> 32768
    phase: str = ""  # Ready | Starting | Unhealthy | CrashLoopBackOff | Failed | Completed | NotRunning
    exit_code: int | None = None  # of its last exit, when it exited since the agent watches it

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "exitCode": self.exit_code,
            "id": self.id,
            "name": self.name,
            "replica": self.replica,
            "image": self.image,
            "state": self.state,
            "health": self.health,
            "specHash": self.spec_hash,
            "restartCount": self.restart_count,
            "hostPorts": dict(self.host_ports),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerState:
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            replica=int(data.get("replica", 0)),
            image=str(data.get("image", "")),
            state=str(data.get("state", "")),
            health=str(data.get("health", "none")),
            spec_hash=str(data.get("specHash", "")),
            restart_count=int(data.get("restartCount", 0)),
            host_ports={str(k): int(v) for k, v in dict(data.get("hostPorts") or {}).items()},
            phase=str(data.get("phase", ""))[:40],
            exit_code=None if data.get("exitCode") is None else int(data["exitCode"]),
        )


@dataclass(frozen=True)
class Observed:
    """``observed/<node>/<service>``: what the agent last saw and did for one assignment.

    ``ready`` counts replicas running the assigned spec hash and passing their health check.
    ``error`` is the last error (ImagePullFailed: ..., etc.) with ``reason`` in CamelCase; never a secret.
    """

    service: str
    node: str
    spec_hash: str
    generation: int
    ready: int
    containers: tuple[ContainerState, ...] = ()
    reason: str = ""
    error: str = ""
    last_reconcile: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "node": self.node,
            "specHash": self.spec_hash,
            "generation": self.generation,
            "ready": self.ready,
            "containers": [c.to_dict() for c in self.containers],
            "reason": self.reason,
            "error": self.error,
            "lastReconcile": self.last_reconcile,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observed:
        return cls(
            service=str(data["service"]),
            node=str(data["node"]),
            spec_hash=str(data.get("specHash", "")),
            generation=int(data.get("generation", 0)),
            ready=int(data.get("ready", 0)),
            containers=tuple(ContainerState.from_dict(c) for c in data.get("containers") or ()),
            reason=str(data.get("reason", "")),
            error=str(data.get("error", "")),
            last_reconcile=float(data.get("lastReconcile", 0.0)),
        )


@dataclass(frozen=True)
class Condition:
    """Kubernetes-style condition; ``last_transition`` changes only when ``status`` changes."""

    type: str  # Valid | Scheduled | Ready | Degraded
    status: str  # True | False | Unknown
    reason: str = ""
    message: str = ""
    last_transition: float = 0.0
    observed_generation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition,
            "observedGeneration": self.observed_generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(data["type"]),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            last_transition=float(data.get("lastTransitionTime", 0.0)),
            observed_generation=int(data.get("observedGeneration", 0)),
        )


@dataclass(frozen=True)
class ServiceStatus:
    """``status/services/<name>``: the controller's roll-up for one service."""

    name: str
    observed_generation: int
    conditions: tuple[Condition, ...] = ()
    placement: Mapping[str, int] = field(default_factory=dict)  # node -> replicas
    replicas: int = 0  # desired
    ready_replicas: int = 0
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # node -> {ready, replicas, error}
    image: str = ""
    route: str = ""
    spec_hash: str = ""
    created_at: float = 0.0  # when the controller first rolled this service up (``meshop status`` AGE)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "observedGeneration": self.observed_generation,
            "conditions": [c.to_dict() for c in self.conditions],
            "placement": dict(self.placement),
            "replicas": self.replicas,
            "readyReplicas": self.ready_replicas,
            "nodes": {k: dict(v) for k, v in self.nodes.items()},
            "image": self.image,
            "route": self.route,
            "specHash": self.spec_hash,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceStatus:
        return cls(
            name=str(data["name"]),
            observed_generation=int(data.get("observedGeneration", 0)),
            conditions=tuple(Condition.from_dict(c) for c in data.get("conditions") or ()),
            placement={str(k): int(v) for k, v in dict(data.get("placement") or {}).items()},
            replicas=int(data.get("replicas", 0)),
            ready_replicas=int(data.get("readyReplicas", 0)),
            nodes={str(k): dict(v) for k, v in dict(data.get("nodes") or {}).items()},
            image=str(data.get("image", "")),
            route=str(data.get("route", "")),
            spec_hash=str(data.get("specHash", "")),
            created_at=float(data.get("createdAt", 0.0)),
        )


@dataclass(frozen=True)
class NodeStatus:
    """``status/nodes/<node>``: the controller's readiness verdict for one node, rewritten on transitions only.

    ``state`` is Ready, Suspect (unhealthy within the grace period: keeps its work, gets none new) or
    NotReady (its movable work is placed elsewhere). ``since`` is when that state began; for a node that
    is not Ready it is also when the node was last seen healthy. ``problem`` says what is wrong.
    """

    name: str
    state: str
    since: float
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "since": self.since, "problem": self.problem}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeStatus:
        return cls(
            name=str(data["name"]),
            state=str(data.get("state", "Unknown")),
            since=float(data.get("since", 0.0)),
            problem=str(data.get("problem", "")),
        )


@dataclass(frozen=True)
class Upstream:
    node: str
    address: str
    port: int
    healthy: bool

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "address": self.address, "port": self.port, "healthy": self.healthy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Upstream:
        return cls(str(data["node"]), str(data["address"]), int(data["port"]), bool(data.get("healthy", False)))


@dataclass(frozen=True)
class RouteRecord:
    """``routes/<host>``: where the gateway sends a route host (validated host and path only)."""

    host: str
    service: str
    path: str = "/"
    upstreams: tuple[Upstream, ...] = ()
    health_path: str = ""  # the service's HTTP health path when it is served on the route's port
    fail_open: bool = False  # upstreams kept although their nodes are NotReady (operator/routes.py)

    def to_dict(self) -> dict[str, Any]:
        body = {
            "host": self.host,
            "service": self.service,
            "path": self.path,
            "upstreams": [u.to_dict() for u in self.upstreams],
            "healthPath": self.health_path,
        }
        if self.fail_open:
            body["failOpen"] = True
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteRecord:
        return cls(
            host=str(data["host"]),
            service=str(data["service"]),
            path=str(data.get("path", "/")),
            upstreams=tuple(Upstream.from_dict(u) for u in data.get("upstreams") or ()),
            health_path=str(data.get("healthPath", "")),
            fail_open=data.get("failOpen") is True,
        )


@dataclass(frozen=True)
class Event:
    """One entry of the bounded event log (``events/<time>-<id>``)."""

    time: float
    kind: str  # Scheduled | Rescheduled | Invalid | NodeLost | NodeReady | LeaderElected | ...
    object: str  # e.g. service/whoami, node/n1
    message: str
    component: str = ""  # controller | agent/<node> | gateway

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind,
            "object": self.object,
            "message": self.message,
            "component": self.component,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            time=float(data.get("time", 0.0)),
            kind=str(data.get("kind", "")),
            object=str(data.get("object", "")),
            message=str(data.get("message", "")),
            component=str(data.get("component", "")),
        )


@dataclass(frozen=True)
class DnsStatus:
    """``status/dns``, written by the leading controller's DNS writer: where the records point and how
    the last update went. Never holds the TSIG key or its secret."""

    provider: str = "none"
    zone: str = ""
    mode: str = ""  # gateways | direct | "" (nothing managed)
    gateways: tuple[str, ...] = ()  # ids of the gateways the records point at
    names: int = 0  # names meshop wants in the zone
    last_update: float = 0.0  # when a change last went through
    last_change: str = ""  # what it was
    last_error: str = ""  # "" when the last pass succeeded
    conflicts: tuple[str, ...] = ()  # wanted names held by records meshop does not own

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "zone": self.zone,
            "mode": self.mode,
            "gateways": list(self.gateways),
            "names": self.names,
            "lastUpdate": self.last_update,
            "lastChange": self.last_change,
            "lastError": self.last_error,
            "conflicts": list(self.conflicts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DnsStatus:
        return cls(
            provider=str(data.get("provider", "none"))[:32],
            zone=str(data.get("zone", ""))[:255],
            mode=str(data.get("mode", ""))[:16],
            gateways=tuple(str(g)[:63] for g in list(data.get("gateways") or ())[:64]),
            names=int(data.get("names", 0)),
            last_update=float(data.get("lastUpdate", 0.0)),
            last_change=str(data.get("lastChange", ""))[:500],
            last_error=str(data.get("lastError", ""))[:500],
            conflicts=tuple(str(c)[:300] for c in list(data.get("conflicts") or ())[:32]),
        )
