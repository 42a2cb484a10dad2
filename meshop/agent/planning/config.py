"""One container fully resolved, as the engine creates it: what planning hands the engine; pure.

``ContainerConfig`` carries secret values in ``env``, so ``env`` is kept out of ``repr`` and must
never be logged; ``secrets`` names them for redaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshop.agent.planning.redact import secret_env


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
