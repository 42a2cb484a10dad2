"""What every command gets from the global flags: how to reach Consul, and output settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from meshop.consul.config import ConsulConfig

if TYPE_CHECKING:
    from meshop.consul.store import KVStore


@dataclass
class CliContext:
    consul: ConsulConfig

    def store(self) -> KVStore:
        """A KV store over the standard library's HTTP client: a command that only reads and writes KV
        (apply, delete, get) never imports py-consul and requests (start-up time); ``.client`` still
        makes the py-consul client for a command that needs sessions or health."""
        from meshop.consul.store import KVStore

        return KVStore.over_http(self.consul)


LOCAL_CLUSTER = click.option(
    "--local-cluster",
    is_flag=True,
    envvar="MESHOP_LOCAL_CLUSTER",
    help="Every node runs on this host (demo, tests): node addresses on loopback/link-local are accepted. "
    "Off in a fleet, where such an address in a node record would point the gateway at its own host.",
)
