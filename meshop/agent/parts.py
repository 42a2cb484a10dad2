"""The reconciler's collaborators, as protocols, in two groups: the cluster side and the engine side.

``NodeReconciler`` is built from ``AgentSettings``, one ``ClusterParts``, one ``EngineParts``, an
optional ``NodeRoutes`` (the node Caddy) and the ``Clocks``; the daemon wires the real classes
(named beside each protocol), a test plain fakes. Each protocol names only what the pass uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from meshop.agent.cluster.assignments import Reading
from meshop.agent.engine.executor import ApplyResult
from meshop.agent.engine.probes import ProbeTarget
from meshop.agent.engine.runtime import VolumeInfo
from meshop.agent.planning.config import ContainerConfig
from meshop.agent.planning.plan import Container, NodePlan, Note, ReplicaKey
from meshop.model import ServiceSpec
from meshop.model.records import Observed

# -- the cluster side (Consul): meshop/agent/cluster/ ------------------------------------------------


class AssignmentSource(Protocol):
    """``cluster.assignments.AssignmentReader``."""

    @property
    def prefix(self) -> str: ...

    @property
    def kv_problem(self) -> str: ...

    @property
    def authoritative(self) -> bool: ...

    def read(self) -> Reading: ...


class Registrar(Protocol):
    """``cluster.registrations.ReplicaRegistrar``."""

    @property
    def promoted(self) -> Mapping[str, float]: ...

    @property
    def renews(self) -> bool: ...

    def follow(
        self,
        serving: Mapping[ReplicaKey, str],
        containers: Iterable[Container],
        specs: Mapping[str, ServiceSpec],
        healthy: Mapping[str, bool],
        /,
    ) -> None: ...

    def replica_checks(self, specs: Mapping[str, ServiceSpec], /) -> dict[str, str]: ...

    def refusals(self) -> dict[str, Note]: ...


class ObservedSink(Protocol):
    """``cluster.observed.ObservedWriter``."""

    @property
    def services(self) -> set[str]: ...

    def publish(self, records: Mapping[str, Observed], /, delete: Iterable[str] = ()) -> int: ...

    def forget(self) -> None: ...


class SecretSource(Protocol):
    """``cluster.secrets.SecretResolver``."""

    def resolve(self, specs: Mapping[str, ServiceSpec], /) -> dict[str, dict[str, str] | Note]: ...


class EventSink(Protocol):
    """``cluster.journal.Journal``."""

    def add(self, kind: str, obj: str, message: str, /) -> None: ...

    def flush(self) -> int: ...


class VolumeLockSync(Protocol):
    """``stateful.keeper.VolumeLockKeeper``: the single-writer locks of stateful volumes."""

    def sync(self, wanted: Mapping[str, Sequence[tuple[str, str]]], present: Set[str], /) -> dict[str, Note]: ...

    def unguarded(self, service: str, /) -> str | None: ...


class RestoreGate(Protocol):
    """``stateful.restore.Restorer``: a stateful service that moved here restores before it starts."""

    def gate(self, service: str, spec: ServiceSpec, /) -> Note | None: ...

    def notes(self) -> Mapping[str, Note]: ...


class KeptVolumes(Protocol):
    """``stateful.kept.KeptVolumes``: stale stateful volumes of this node, recorded, never deleted."""

    def follow(self, volumes: Sequence[VolumeInfo], assigned: Set[str], /) -> None: ...


@dataclass(frozen=True)
class ClusterParts:
    assignments: AssignmentSource
    registrar: Registrar
    observed: ObservedSink
    secrets: SecretSource
    journal: EventSink
    volume_locks: VolumeLockSync | None = None  # None: no stateful service may run on this agent
    restorer: RestoreGate | None = None  # None: a stateful service that moved here starts as it is
    kept_volumes: KeptVolumes | None = None


# -- the engine side (Docker): meshop/agent/engine/ --------------------------------------------------


class ContainerEngine(Protocol):
    """What the pass itself reads of ``engine.runtime.Runtime``."""

    def list_managed(self) -> list[Container]: ...

    def image_present(self, image: str, /) -> bool: ...

    def list_volumes(self) -> list[VolumeInfo]: ...

    def remove_volume(self, name: str, /) -> bool: ...


class ActionExecutor(Protocol):
    """``engine.executor.Executor``."""

    def apply(self, plan: NodePlan, build: Callable[[str, int, str], ContainerConfig], /) -> ApplyResult: ...

    def finished_pulls(self) -> Sequence[tuple[str, Sequence[str], str | None]]: ...


class ProbeMonitor(Protocol):
    """``engine.probes.HealthMonitor``."""

    def results(self) -> Mapping[str, bool]: ...

    def update(self, targets: Mapping[str, ProbeTarget], /) -> None: ...


@dataclass(frozen=True)
class EngineParts:
    runtime: ContainerEngine
    executor: ActionExecutor
    monitor: ProbeMonitor


# -- the node's routes: meshop/agent/ingress/ ---------------------------------------------------------


class NodeRoutes(Protocol):
    """``ingress.sync.NodeIngress``: the node Caddy's routes to the replicas the plan serves."""

    @property
    def errors(self) -> Mapping[str, Note]: ...

    def gate(self, promoted: Mapping[str, float], /) -> dict[str, float]: ...

    def follow(
        self,
        specs: Mapping[str, ServiceSpec],
        serving: Mapping[ReplicaKey, str],
        containers: Sequence[Container],
        healthy: Mapping[str, bool],
        now: float,
        /,
    ) -> None: ...

    def next_retry(self, now: float, /) -> float | None: ...
