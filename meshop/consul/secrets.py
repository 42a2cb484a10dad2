"""Secret values for ``valueFrom.consulKey`` env vars, read at apply time.

A secret's key is a full Consul KV path chosen by the user (not under meshop's prefix), so it is read
with the raw client. The value is returned to the caller only: it is never logged, and errors name
the key, never the value.
"""

from __future__ import annotations

import consul

from meshop.consul.client import consul_errors, make_client
from meshop.consul.config import ConsulConfig


class SecretReader:
    def __init__(self, config: ConsulConfig, client: consul.Consul | None = None) -> None:
        self.config = config
        self.client = client or make_client(config)

    def get(self, key: str) -> str | None:
        """The value at the full KV path ``key`` (UTF-8 text); None when the key does not exist."""
        path = key.lstrip("/")
        with consul_errors(self.config, f"reading secret key {path}"):
            _, raw = self.client.kv.get(path)
        if not raw:
            return None
        value = raw.get("Value") or b""
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
