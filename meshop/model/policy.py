"""What a node allows: the risky container features are refused unless its Node document opts in."""

from __future__ import annotations

from typing import Any, NamedTuple


class Policy(NamedTuple):
    """Node policy; ``DEFAULT_POLICY`` refuses bind mounts, privileged mode and host networking. (Not a
    dataclass: validating a document, ``meshop validate``, never loads ``dataclasses``.)"""

    allow_bind_mounts: bool = False
    allow_privileged: bool = False
    allow_host_network: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowBindMounts": self.allow_bind_mounts,
            "allowPrivileged": self.allow_privileged,
            "allowHostNetwork": self.allow_host_network,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            allow_bind_mounts=bool(data.get("allowBindMounts", False)),
            allow_privileged=bool(data.get("allowPrivileged", False)),
            allow_host_network=bool(data.get("allowHostNetwork", False)),
        )


DEFAULT_POLICY = Policy()
PERMISSIVE_POLICY = Policy(allow_bind_mounts=True, allow_privileged=True, allow_host_network=True)
