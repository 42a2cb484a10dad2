"""What every command gets from the global flags: how to reach Consul, and output settings."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from meshop.model.keys import resolve_prefix

if TYPE_CHECKING:
    from meshop.consul.config import ConsulConfig
    from meshop.consul.store import KVStore


class CliContext:
    """The global flags (``--consul-addr``, ``--token``, ``--prefix``), read into a ``ConsulConfig`` on
    first use: a bad address or an unreadable token file is an error for a command that talks to Consul,
    not for ``meshop validate``, which needs only the prefix."""

    def __init__(self, addr: str | None = None, token: str | None = None, prefix: str | None = None) -> None:
        self.addr, self.token, self.prefix_flag = addr, token, prefix

    @cached_property
    def consul(self) -> ConsulConfig:
        from meshop.consul.config import ConsulConfig  # a dataclass: ``meshop validate`` never loads them

        return ConsulConfig.from_env(addr=self.addr, token=self.token, prefix=self.prefix_flag)

    @property
    def prefix(self) -> str:
        """The KV prefix, as ``consul.prefix`` has it, without reading the rest of the configuration."""
        return resolve_prefix(self.prefix_flag, os.environ)

    def store(self) -> KVStore:
        """A KV store over the standard library's HTTP client: a command that only reads and writes KV
        (apply, delete, get) never imports py-consul and requests (start-up time); ``.client`` still
        makes the py-consul client for a command that needs sessions or health."""
        from meshop.consul.store import KVStore

        return KVStore.over_http(self.consul)
