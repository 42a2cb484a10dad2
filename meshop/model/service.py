"""Service value objects: the resolved, defaulted form the controller stores and the agent runs.

``ServiceSpec.to_dict()`` is the KV form (camelCase like the document, every default written out,
durations as float seconds, memory as int bytes, route/health ports as container port numbers);
``ServiceSpec.from_dict`` reads that form, or any document spec, back without validating it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from meshop.errors import DocumentError
from meshop.model.frozen import FrozenDict, freeze
from meshop.model.rules import tcp_port
from meshop.model.schema import API_VERSION, apply_defaults, load_schema
from meshop.model.units import parse_duration, parse_memory

Json = dict[str, Any]


def _port(ref: object, ports: list[Any]) -> int:
    resolved = tcp_port(ref, ports)
    if resolved is None:
        raise ValueError(f"port {ref!r} is not a declared tcp port")
    return resolved


def _opt(out: Json, key: str, value: object) -> Json:
    if value is not None:
        out[key] = value
    return out


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    consul_key: str | None = None  # secret: read from Consul by the agent, never logged

    def to_dict(self) -> Json:
        if self.consul_key is not None:
            return {"name": self.name, "valueFrom": {"consulKey": self.consul_key}}
        return {"name": self.name, "value": self.value}

    @classmethod
    def from_dict(cls, d: Json) -> EnvVar:
        key = d["valueFrom"]["consulKey"] if "valueFrom" in d else None
        return cls(str(d["name"]), None if key is not None else str(d["value"]), key)


@dataclass(frozen=True)
class Port:
    name: str
    container: int
    host: int | None = None  # None: Docker picks an ephemeral host port
    protocol: str = "tcp"

    def to_dict(self) -> Json:
        out = {"name": self.name, "container": self.container, "protocol": self.protocol}
        return _opt(out, "host", self.host)

    @classmethod
    def from_dict(cls, d: Json) -> Port:
        host = d.get("host")
        return cls(str(d["name"]), int(d["container"]), None if host is None else int(host), str(d["protocol"]))


@dataclass(frozen=True)
class Volume:
    name: str | None  # named volume; exactly one of name / host_path is set
    host_path: str | None
    mount_path: str
    read_only: bool = False
    delete_with_service: bool = False

    def to_dict(self) -> Json:
        out: Json = {
            "mountPath": self.mount_path,
            "readOnly": self.read_only,
            "deleteWithService": self.delete_with_service,
        }
        return _opt(_opt(out, "name", self.name), "hostPath", self.host_path)

    @classmethod
    def from_dict(cls, d: Json) -> Volume:
        return cls(
            d.get("name"),
            d.get("hostPath"),
            str(d["mountPath"]),
            bool(d["readOnly"]),
            bool(d["deleteWithService"]),
        )


@dataclass(frozen=True)
class Placement:
    node: str | None = None
    node_selector: FrozenDict = field(default_factory=FrozenDict)
    spread: bool = True
    group: str | None = None
    rebalance: str | None = None  # off | manual | auto; None: the controller's cluster-wide default

    def to_dict(self) -> Json:
        out: Json = {"nodeSelector": dict(self.node_selector), "spread": self.spread}
        return _opt(_opt(_opt(out, "node", self.node), "group", self.group), "rebalance", self.rebalance)

    @classmethod
    def from_dict(cls, d: Json) -> Placement:
        return cls(d.get("node"), freeze(d["nodeSelector"]), bool(d["spread"]), d.get("group"), d.get("rebalance"))


@dataclass(frozen=True)
class Route:
    host: str
    path: str
    port: int  # container port number (a port name in the document is resolved)

    def to_dict(self) -> Json:
        return {"host": self.host, "path": self.path, "port": self.port}

    @classmethod
    def from_dict(cls, d: Json, ports: list[Any]) -> Route:
        return cls(str(d["host"]), str(d["path"]), _port(d["port"], ports))


@dataclass(frozen=True)
class HealthCheck:
    kind: str  # "http" | "tcp"
    path: str | None  # http only
    port: int  # container port number
    interval: float  # seconds
    timeout: float  # seconds

    def to_dict(self) -> Json:
        probe = {"port": self.port} if self.kind == "tcp" else {"path": self.path, "port": self.port}
        return {self.kind: probe, "interval": self.interval, "timeout": self.timeout}

    @classmethod
    def from_dict(cls, d: Json, ports: list[Any]) -> HealthCheck:
        kind = "http" if "http" in d else "tcp"
        probe = d[kind]
        path = str(probe["path"]) if kind == "http" else None
        return cls(
            kind,
            path,
            _port(probe["port"], ports),
            parse_duration(d["interval"]),
            parse_duration(d["timeout"]),
        )


@dataclass(frozen=True)
class UpdatePolicy:
    strategy: str = "start-first"
    health_timeout: float = 60.0
    auto_rollback: bool = True

    def to_dict(self) -> Json:
        return {
            "strategy": self.strategy,
            "healthTimeout": self.health_timeout,
            "autoRollback": self.auto_rollback,
        }

    @classmethod
    def from_dict(cls, d: Json) -> UpdatePolicy:
        return cls(str(d["strategy"]), parse_duration(d["healthTimeout"]), bool(d["autoRollback"]))


@dataclass(frozen=True)
class Resources:
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int = 4096  # most processes and threads at once

    def to_dict(self) -> Json:
        return {**_opt(_opt({}, "memory", self.memory), "cpus", self.cpus), "pids": self.pids}

    @classmethod
    def from_dict(cls, d: Json) -> Resources:
        memory, cpus = d.get("memory"), d.get("cpus")
        return cls(
            None if memory is None else parse_memory(memory),
            None if cpus is None else float(cpus),
            int(d["pids"]),
        )


def _cap(name: object) -> str:
    """``cap_net_raw`` -> ``NET_RAW``: one spelling per capability, so the spec hash does not depend on it."""
    return str(name).upper().removeprefix("CAP_")


@dataclass(frozen=True)
class Security:
    """Container hardening: Docker's ``--user``, ``--read-only``, ``no-new-privileges``, ``--cap-drop/add``."""

    user: str | None = None  # None: the image's USER
    read_only_root: bool = False
    no_new_privileges: bool = True
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()

    def to_dict(self) -> Json:
        out: Json = {
            "readOnlyRootFilesystem": self.read_only_root,
            "noNewPrivileges": self.no_new_privileges,
            "capabilities": {"drop": list(self.cap_drop), "add": list(self.cap_add)},
        }
        return _opt(out, "user", self.user)

    @classmethod
    def from_dict(cls, d: Json) -> Security:
        caps = d["capabilities"]
        return cls(
            None if d.get("user") is None else str(d["user"]),
            bool(d["readOnlyRootFilesystem"]),
            bool(d["noNewPrivileges"]),
            tuple(_cap(c) for c in caps["drop"]),
            tuple(_cap(c) for c in caps["add"]),
        )


@dataclass(frozen=True)
class TailnetExpose:
    enabled: bool = True
    name: str | None = None  # None: the service name (see machine_name); kept None so spec_hash ignores it

    def to_dict(self) -> Json:
        return _opt({"enabled": self.enabled}, "name", self.name)

    @classmethod
    def from_dict(cls, d: Json) -> TailnetExpose:
        return cls(bool(d["enabled"]), d.get("name"))

    def machine_name(self, service_name: str) -> str:
        """The tailnet machine name: ``name``, or the service's own name when the document omits it."""
        return self.name or service_name


@dataclass(frozen=True)
class ServiceSpec:
    image: str
    command: tuple[str, ...] | None = None  # None: the image's entrypoint
    args: tuple[str, ...] | None = None  # None: the image's cmd
    env: tuple[EnvVar, ...] = ()
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    replicas: int = 1
    min_ready_seconds: float = 2.0  # without a health check: running this long without a crash is Ready
    placement: Placement = field(default_factory=Placement)
    route: Route | None = None
    health: HealthCheck | None = None
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    resources: Resources = field(default_factory=Resources)
    restart: str = "unless-stopped"
    expose_tailnet: TailnetExpose | None = None
    security: Security = field(default_factory=Security)
    privileged: bool = False
    network_mode: str = "bridge"
    restarted_at: str = ""  # a rolling restart was asked at this time ("": never); part of the spec hash

    def to_dict(self) -> Json:
        """The KV form: JSON-safe, camelCase, every default written, stable key set."""
        out: Json = {"image": self.image}
        if self.command is not None:
            out["command"] = list(self.command)
        if self.args is not None:
            out["args"] = list(self.args)
        out.update(
            env=[e.to_dict() for e in self.env],
            ports=[p.to_dict() for p in self.ports],
            volumes=[v.to_dict() for v in self.volumes],
            replicas=self.replicas,
            minReadySeconds=self.min_ready_seconds,
            placement=self.placement.to_dict(),
        )
        _opt(out, "route", self.route and self.route.to_dict())
        _opt(out, "health", self.health and self.health.to_dict())
        out.update(
            update=self.update.to_dict(),
            resources=self.resources.to_dict(),
            restart=self.restart,
            expose={"tailnet": self.expose_tailnet.to_dict()} if self.expose_tailnet else {},
            security=self.security.to_dict(),
            privileged=self.privileged,
            networkMode=self.network_mode,
        )
        return _opt(out, "restartedAt", self.restarted_at or None)  # absent when unset: old hashes stay

    @classmethod
    def from_dict(cls, data: Json) -> ServiceSpec:
        """Read ``to_dict()`` output or a document spec; defaults are filled, nothing is validated.

        Raises DocumentError when the data is too malformed to read (e.g. a corrupt KV value).
        """
        try:
            d = copy.deepcopy(dict(data))
            root = load_schema("Service")
            apply_defaults(d, root["properties"]["spec"], root)
            return cls._build(d)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise DocumentError(f"malformed service spec: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _build(cls, d: Json) -> ServiceSpec:
        ports = d["ports"]
        tailnet = d["expose"].get("tailnet")
        return cls(
            image=str(d["image"]),
            command=None if d.get("command") is None else tuple(str(c) for c in d["command"]),
            args=None if d.get("args") is None else tuple(str(a) for a in d["args"]),
            env=tuple(EnvVar.from_dict(e) for e in d["env"]),
            ports=tuple(Port.from_dict(p) for p in ports),
            volumes=tuple(Volume.from_dict(v) for v in d["volumes"]),
            replicas=int(d["replicas"]),
            min_ready_seconds=float(d["minReadySeconds"]),
            placement=Placement.from_dict(d["placement"]),
            route=None if d.get("route") is None else Route.from_dict(d["route"], ports),
            health=None if d.get("health") is None else HealthCheck.from_dict(d["health"], ports),
            update=UpdatePolicy.from_dict(d["update"]),
            resources=Resources.from_dict(d["resources"]),
            restart=str(d["restart"]),
            expose_tailnet=None if tailnet is None else TailnetExpose.from_dict(tailnet),
            security=Security.from_dict(d["security"]),
            privileged=bool(d["privileged"]),
            network_mode=str(d["networkMode"]),
            restarted_at=str(d.get("restartedAt") or ""),
        )


@dataclass(frozen=True)
class Service:
    name: str
    labels: FrozenDict
    annotations: FrozenDict
    spec: ServiceSpec

    def to_dict(self) -> Json:
        """The whole document in canonical, defaulted form (valid input for ``parse_service``)."""
        metadata = {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)}
        return {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": metadata,
            "spec": self.spec.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: Json) -> Service:
        """Read a Service document (or ``to_dict()`` output) without validating it."""
        try:
            meta = doc["metadata"]
            name = str(meta["name"])
            labels, annotations = freeze(meta.get("labels")), freeze(meta.get("annotations"))
            spec = doc["spec"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocumentError(f"malformed service document: {type(exc).__name__}: {exc}") from None
        return cls(name, labels, annotations, ServiceSpec.from_dict(spec))
