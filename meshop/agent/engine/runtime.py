"""The small interface between the agent and a container engine, and the errors it raises.

``DockerDriver`` (the only module that imports ``docker``) implements it; unit tests use an in-memory
one. What to create (``ContainerConfig``, ``Mount``, ``PortBinding``) is planning's (``planning/config.py``)
and re-exported here for the engine's callers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from meshop.agent.planning.config import ContainerConfig as ContainerConfig
from meshop.agent.planning.config import Mount as Mount
from meshop.agent.planning.config import PortBinding as PortBinding
from meshop.agent.planning.plan import Container
from meshop.agent.planning.usage import ContainerSample
from meshop.errors import DriverError


class ImagePullFailed(DriverError):
    """A pull kept failing (no such image, registry unreachable, ...)."""


class NameConflict(DriverError):
    """The container name is taken by a container this agent does not own."""


class ImageRefused(DriverError):
    """The image sets ``meshop.*`` labels itself: containers of it could pass for another service's."""


class VolumeNotOwned(DriverError):
    """A volume with the name the agent would use exists but is not this service's (by its labels)."""


class ContainerGone(DriverError):
    """The container disappeared while the agent was acting on it."""


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class EngineInfo:
    cpus: float
    memory: int


class Runtime(Protocol):
    """What the executor needs from a container engine; every method is idempotent."""

    def list_managed(self) -> list[Container]: ...

    def image_present(self, image: str) -> bool: ...

    def pull(self, image: str) -> None: ...

    def create_and_start(self, config: ContainerConfig) -> str: ...

    def start(self, container_id: str) -> None: ...

    def remove(self, container_id: str, grace: float) -> None: ...

    def list_volumes(self) -> list[VolumeInfo]: ...

    def remove_volume(self, name: str) -> bool: ...

    def info(self) -> EngineInfo: ...

    def events(self) -> EventStream: ...

    def stats(self, container_id: str) -> ContainerSample | None:
        """One read of a running container's counters (no streaming, no wait); None when the engine's
        answer is not a sane sample; ``ContainerGone`` when it is gone."""
        ...


class EventStream(Protocol):
    def __iter__(self) -> Iterator[dict]: ...

    def close(self) -> None: ...
