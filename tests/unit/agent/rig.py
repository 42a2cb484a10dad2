"""In-memory Docker and Consul for the reconciler's unit tests, and a rig that builds a reconciler on them.

The fakes implement the same protocols as the real parts (``meshop.agent.parts``, ``cluster.kv``,
``engine.runtime``); the real ones are exercised in tests/integration/agent.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.cluster.assignments import AssignmentReader
from meshop.agent.cluster.observed import ObservedWriter
from meshop.agent.cluster.registrations import ReplicaRegistrar
from meshop.agent.cluster.secrets import SecretResolver
from meshop.agent.cluster.statefile import StateFile
from meshop.agent.engine.executor import Executor
from meshop.agent.engine.probes import ProbeTarget
from meshop.agent.engine.puller import Puller
from meshop.agent.engine.runtime import EngineInfo, ImagePullFailed, VolumeInfo
from meshop.agent.parts import ClusterParts, EngineParts
from meshop.agent.planning.config import ContainerConfig
from meshop.agent.planning.plan import Container
from meshop.agent.reconciler import AgentSettings, NodeReconciler
from meshop.consul.config import ConsulConfig
from meshop.consul.services import InstanceHealth, Registration
from meshop.consul.store import Entry, Listing, TxnOp
from meshop.errors import ConsulUnavailable, DriverError
from meshop.model import ServiceSpec, keys, spec_hash
from meshop.model.records import Assignment, Observed, dumps, loads_json

NODE = "n1"
SLEEP = {"image": "img:1", "command": ["/bin/sleep"], "args": ["60"]}


@dataclass
class FakeRuntime:
    containers: dict[str, Container] = field(default_factory=dict)
    images: set[str] = field(default_factory=lambda: {"img:1"})
    fail_create: set[str] = field(default_factory=set)
    configs: list[ContainerConfig] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    wall: Callable[[], float] = lambda: 1.0  # Docker's clock: created and started times are wall times
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list_managed(self) -> list[Container]:
        return list(self.containers.values())

    def image_present(self, image: str) -> bool:
        return image in self.images

    def pull(self, image: str) -> None:
        raise ImagePullFailed(f"no {image}")

    def create_and_start(self, config: ContainerConfig) -> str:
        labels = config.labels
        with self._lock:
            self.attempts.append(labels["meshop.service"])
            if labels["meshop.service"] in self.fail_create:
                echoed = " ".join(f'"{entry}"' for entry in config.env)  # as runc quotes what it refuses
                raise DriverError(f"creating {config.name} failed: boom {echoed}")
            cid = f"id{next(self._ids):04d}"
            self.configs.append(config)
            self.containers[cid] = Container(
                id=cid,
                name=config.name,
                service=labels["meshop.service"],
                replica=int(labels["meshop.replica"]),
                spec_hash=labels["meshop.spec-hash"],
                config_hash=labels["meshop.config-hash"],
                generation=int(labels["meshop.generation"]),
                image=config.image,
                state="running",
                created_at=self.wall(),
                started_at=self.wall(),
            )
        return cid

    def start(self, container_id: str) -> None:
        self.containers[container_id] = replace(self.containers[container_id], state="running", started_at=self.wall())

    def remove(self, container_id: str, grace: float) -> None:
        with self._lock:
            self.containers.pop(container_id, None)

    def list_volumes(self) -> list[VolumeInfo]:
        return []

    def remove_volume(self, name: str) -> bool:
        return False

    def info(self) -> EngineInfo:
        return EngineInfo(2, 2**30)

    def events(self) -> Any:
        raise NotImplementedError


@dataclass
class FakeStore:
    data: dict[str, bytes] = field(default_factory=dict)
    config: ConsulConfig = field(default_factory=lambda: ConsulConfig(prefix="meshop"))
    down: bool = False
    writes: int = 0

    def _check(self) -> None:
        if self.down:
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")

    def list(self, prefix: str, index: int = 0, wait: str | None = None) -> Listing:
        self._check()
        entries = tuple(Entry(k, v, 1) for k, v in sorted(self.data.items()) if k.startswith(prefix))
        return Listing(1, entries)

    def keys(self, prefix: str) -> list[str]:
        self._check()
        return sorted(k for k in self.data if k.startswith(prefix))

    def list_together(self, prefixes: Sequence[str]) -> tuple[Listing, ...]:
        return tuple(self.list(prefix) for prefix in prefixes)

    def get(self, key: str) -> Entry | None:
        self._check()
        return Entry(key, self.data[key], 1) if key in self.data else None

    def put(self, key: str, value: bytes | str) -> None:
        self._check()
        self.writes += 1
        self.data[key] = value.encode() if isinstance(value, str) else value

    def cas(self, key: str, value: bytes | str, index: int) -> bool:
        self._check()
        if (index == 0) == (key in self.data):
            return False
        self.put(key, value)
        return True

    def transact(self, ops: Sequence[TxnOp]) -> None:
        self._check()
        for op in ops:
            self.writes += 1
            if op.verb == "set":
                assert op.value is not None
                self.data[op.key] = op.value
            elif op.verb == "delete":
                self.data.pop(op.key, None)


@dataclass
class FakeServices:
    store: FakeStore
    registered: dict[str, Registration] = field(default_factory=dict)
    foreign: list[InstanceHealth] = field(default_factory=list)  # instances of other owners (meta service)
    verdicts: dict[str, bool] = field(default_factory=dict)  # TTL check id -> passing

    def local(self) -> dict[str, dict]:
        self.store._check()
        return {
            sid: {"Service": r.name, "Address": r.address, "Port": r.port, "Meta": dict(r.meta)}
            for sid, r in self.registered.items()
        }

    def local_service_health(self) -> dict[str, str]:
        self.store._check()
        return dict.fromkeys(self.registered, "passing")

    def register(self, reg: Registration) -> None:
        self.store._check()
        self.registered[reg.service_id] = reg

    def deregister(self, service_id: str) -> None:
        self.store._check()
        self.registered.pop(service_id, None)

    def instances(self, name: str) -> tuple[int, list[InstanceHealth]]:
        self.store._check()
        ours = [InstanceHealth("c", sid, dict(r.meta), "passing") for sid, r in self.registered.items()]
        return 1, [i for i in [*ours, *self.foreign] if i.meta.get("service", name) == name]

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        self.store._check()
        self.verdicts[check_id] = True

    def ttl_fail(self, check_id: str, note: str = "") -> None:
        self.store._check()
        self.verdicts[check_id] = False


@dataclass
class FakeSecrets:
    values: dict[str, str] = field(default_factory=dict)

    def get(self, service: str, key: str) -> str | None:
        return self.values.get(key)


class FakeMonitor:
    def __init__(self) -> None:
        self.targets: dict[str, ProbeTarget] = {}

    def update(self, targets: Mapping[str, ProbeTarget]) -> None:
        self.targets = dict(targets)

    def results(self) -> dict[str, bool]:
        return {}


@dataclass
class FakeJournal:
    """Events of the agent, kept in memory (``cluster.journal.Journal`` writes them to Consul)."""

    pending: list[tuple[str, str, str]] = field(default_factory=list)
    written: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, kind: str, obj: str, message: str) -> None:
        self.pending.append((kind, obj, message))

    def flush(self) -> int:
        done, self.pending = self.pending, []
        self.written += done
        return len(done)


@dataclass
class Rig:
    runtime: FakeRuntime
    store: FakeStore
    services: FakeServices
    secrets: FakeSecrets
    journal: FakeJournal
    reader: AssignmentReader
    registrar: ReplicaRegistrar
    reconciler: NodeReconciler

    def assign(self, service: str, spec: dict[str, Any], replicas: int = 1, raw: bytes | None = None) -> Assignment:
        resolved = ServiceSpec.from_dict(spec)
        assignment = Assignment(service, NODE, replicas, 1, spec_hash(resolved), resolved.to_dict())
        self.store.data[keys.assignment(NODE, service)] = raw if raw is not None else dumps(assignment).encode()
        return assignment

    def observed(self, service: str) -> Observed | None:
        value = self.store.data.get(keys.observed(NODE, service))
        return Observed.from_dict(loads_json(value)) if value else None

    def settle(self, passes: int = 4) -> None:
        for _ in range(passes):
            self.reconciler.reconcile()


def make_rig(
    tmp_path: Path | None = None,
    runtime: FakeRuntime | None = None,
    store: FakeStore | None = None,
    clocks: Clocks = SYSTEM,
    settings: AgentSettings | None = None,
) -> Rig:
    """A reconciler over in-memory Docker and Consul, with the real cluster, memory and planning parts."""
    runtime = runtime or FakeRuntime()
    store = store or FakeStore()
    services = FakeServices(store)
    secrets = FakeSecrets()
    journal = FakeJournal()
    reader = AssignmentReader(store, NODE, StateFile(tmp_path, NODE) if tmp_path else None, journal, clocks.wall)
    registrar = ReplicaRegistrar(services, NODE, "10.0.0.1", clocks.mono)
    cluster = ClusterParts(reader, registrar, ObservedWriter(store, NODE), SecretResolver(secrets), journal)
    engine = EngineParts(runtime, Executor(runtime, Puller(runtime, lambda: None), grace=0), FakeMonitor())
    settings = settings or AgentSettings(node=NODE, advertise_addr="10.0.0.1", drain=0.0)
    reconciler = NodeReconciler(settings, cluster, engine, clocks=clocks)
    return Rig(runtime, store, services, secrets, journal, reader, registrar, reconciler)
