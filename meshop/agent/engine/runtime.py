"""The small interface between the agent and a container engine, and the errors it raises.

``DockerDriver`` (the only module that imports ``docker``) implements it; unit tests use an in-memory
one. ``ContainerConfig`` is one container fully resolved (secret values included), so its ``env`` is
kept out of ``repr`` and must never be logged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from meshop.agent.planning.plan import Container
from meshop.agent.planning.redact import secret_env
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
class Mount:
    target: str
    source: str | None = None  # volume name or host path; None: an anonymous volume
    kind: str = "volume"  # volume | bind
    read_only: bool = False
    volume_labels: Mapping[str, str] = field(default_factory=dict)  # for named volumes the agent creates


@dataclass(frozen=True)
class PortBinding:
    container: int
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"
    host_port: int | None = None  # None: an ephemeral port


@dataclass(frozen=True)
class ContainerConfig:
    name: str
    image: str
    labels: Mapping[str, str]
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    env: tuple[str, ...] = field(default=(), repr=False)  # NAME=value, secrets resolved: never log
    secret_names: tuple[str, ...] = ()  # env names whose values are secrets: redacted from every error
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[Mount, ...] = ()
    restart: str = "unless-stopped"
    memory: int | None = None
    nano_cpus: int | None = None
    pids: int | None = None
    privileged: bool = False
    network_mode: str = "bridge"
    user: str | None = None  # None: the image's USER
    read_only_root: bool = False
    no_new_privileges: bool = True
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()

    @property
    def secrets(self) -> dict[str, str]:
        """Env name -> secret value, for redacting errors about this container."""
        return secret_env(self.env, self.secret_names)


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


class EventStream(Protocol):
    def __iter__(self) -> Iterator[dict]: ...

    def close(self) -> None: ...
