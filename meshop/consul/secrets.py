"""Secret values for ``valueFrom.consulKey`` env vars, read at apply time.

A secret's key is a full Consul KV path that must lie in the service's own secrets folder,
``<prefix>/secrets/<service>/``; validation refuses any other key, and this reader refuses it again
before any request (a forged or stale assignment must not read another service's secrets or keys
outside meshop's prefix with the agent's token). The value is returned to the caller only: it is
never logged, and errors name the key, never the value.
"""

from __future__ import annotations

from meshop.consul.client import (
    consul,  # py-consul, loaded the lean way (meshop.libs)
    consul_errors,
    make_client,
)
from meshop.consul.config import ConsulConfig
from meshop.errors import SecretRefused
from meshop.model import keys
from meshop.model.names import is_consul_key


class SecretReader:
    def __init__(self, config: ConsulConfig, client: consul.Consul | None = None) -> None:
        self.config = config
        self.client = client or make_client(config)

    def get(self, service: str, key: str) -> str | None:
        """The value at the full KV path ``key`` (UTF-8 text); None when the key does not exist.

        Raises SecretRefused, without reading, when ``key`` is outside ``service``'s secrets folder.
        """
        if not is_consul_key(key) or not keys.in_secret_folder(key, self.config.prefix, service):
            folder = keys.secret_folder(self.config.prefix, service)
            raise SecretRefused(f"Consul key {key} is outside {folder} (the service's own secrets folder); not read")
        with consul_errors(self.config, f"reading secret key {key}"):
            _, raw = self.client.kv.get(key)
        if not raw:
            return None
        value = raw.get("Value") or b""
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
