"""``meshop fence run``'s configuration: the node, its Docker engine and the lease folder.

The fence reads the agent's file (``/etc/meshop/agent.yaml``), so both agree on the node, the engine
and the lease folder without a second file to keep equal; it takes the keys it needs (``FIELDS``) and
leaves the agent's others alone. Flags override the file, as for every daemon (``values.merge``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshop.agent.planning.labels import is_label
from meshop.agent.stateful.leases import DEFAULT_DIR
from meshop.config import values as v
from meshop.errors import ConfigError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _node(raw: object) -> str:
    node = v.text(raw)
    if not is_label(node):
        raise ValueError(f"{node!r} is not an RFC 1123 label (a-z, 0-9, '-')")
    return node


FIELDS: dict[str, v.Field] = {
    "node": v.Field(_node, v.REQUIRED),
    "docker_host": v.Field(v.optional(v.text)),
    "lease_dir": v.Field(v.path, DEFAULT_DIR),
    "log_format": v.Field(v.choice(*LOG_FORMATS), "text"),
    "log_level": v.Field(v.choice(*LOG_LEVELS), "info"),
}


@dataclass(frozen=True)
class FenceConfig:
    node: str
    docker_host: str | None = None
    lease_dir: Path = DEFAULT_DIR
    log_format: str = "text"
    log_level: str = "info"

    @classmethod
    def load(cls, given: Mapping[str, object] | None = None, path: Path | None = None) -> FenceConfig:
        """Defaults < the fence's keys in the agent's file at ``path`` < ``given`` (the flags given)."""
        file = {k: val for k, val in v.read_file(path).items() if k in FIELDS} if path is not None else {}
        try:
            merged = v.merge(FIELDS, {**file, **(given or {})}, None)
        except ConfigError as exc:
            if path is not None and exc.field in file and exc.field not in (given or {}):
                raise ConfigError(exc.field, exc.reason, str(path)) from None
            raise
        return cls(**merged.values)  # type: ignore[arg-type]
