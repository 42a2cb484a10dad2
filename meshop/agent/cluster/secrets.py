"""The secret values of the assigned services' env, read from Consul and checked before use.

A service reads only keys of its own folder (``SecretReader`` refuses others: ``SecretRefused``); a
value no env variable can hold (a NUL byte, ...) is refused too. A key that does not exist yet, or that
this node may not read yet (``meshop acl sync`` has not caught up), is *unavailable*: the service keeps
what runs and the agent comes back for it. Values never leave this module except into container env.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from meshop import metrics
from meshop.agent.planning.desired import secret_keys
from meshop.agent.planning.plan import Note
from meshop.agent.planning.redact import env_problem
from meshop.errors import ConsulError, SecretRefused
from meshop.model import ServiceSpec

log = logging.getLogger(__name__)

Resolved = dict[str, str] | Note  # env name -> value, or why there are none


class SecretGetter(Protocol):
    def get(self, service: str, key: str, /) -> str | None: ...


class SecretResolver:
    def __init__(self, reader: SecretGetter) -> None:
        self.reader = reader

    def resolve(self, specs: Mapping[str, ServiceSpec]) -> dict[str, Resolved]:
        """Per service that takes env from Consul keys: its values, or a ``SecretRefused`` /
        ``SecretUnavailable`` note."""
        resolved: dict[str, Resolved] = {}
        for name, spec in specs.items():
            wanted = secret_keys(spec)
            if wanted:
                resolved[name] = self._values(name, wanted)
        return resolved

    def _values(self, name: str, wanted: Mapping[str, str]) -> Resolved:
        values: dict[str, str] = {}
        try:
            for env_name, key in wanted.items():
                value = self.reader.get(name, key)
                if value is None:
                    raise LookupError(f"Consul key {key} (env {env_name}) does not exist")
                if (problem := env_problem(value)) is not None:
                    raise SecretRefused(f"the value of Consul key {key} (env {env_name}) {problem}")
                values[env_name] = value
        except SecretRefused as exc:  # the key is not this service's, or no env can hold the value
            log.warning("%s: %s", name, exc)
            return Note("SecretRefused", str(exc)[:300])
        except (ConsulError, LookupError) as exc:
            if isinstance(exc, ConsulError):
                metrics.consul_errors_total.labels("agent", "secrets").inc()
            return Note("SecretUnavailable", str(exc)[:300])
        return values
