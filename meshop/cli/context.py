"""What every command gets from the global flags: how to reach Consul, and output settings."""

from __future__ import annotations

from dataclasses import dataclass

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore


@dataclass
class CliContext:
    consul: ConsulConfig

    def store(self) -> KVStore:
        return KVStore(self.consul)
