"""What every command gets from the global flags: how to reach Consul, and output settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from meshop.consul.config import ConsulConfig

if TYPE_CHECKING:  # the Consul client (requests, urllib3) loads only when a command talks to Consul
    from meshop.consul.store import KVStore


@dataclass
class CliContext:
    consul: ConsulConfig

    def store(self) -> KVStore:
        from meshop.consul.store import KVStore

        return KVStore(self.consul)


LOCAL_CLUSTER = click.option(
    "--local-cluster",
    is_flag=True,
    envvar="MESHOP_LOCAL_CLUSTER",
    help="Every node runs on this host (demo, tests): node addresses on loopback/link-local are accepted. "
    "Off in a fleet, where such an address in a node record would point the gateway at its own host.",
)
