"""What ``meshop status`` and the dashboard say about Consul's servers, the control plane. Pure.

The rule: failover needs a Raft leader, which needs a quorum (a majority of the servers). One server is
a host whose loss stops every failover (no KV, no leading controller, no DNS change): said plainly, with
the host. Two servers are worse than one (losing either stops it). No leader: "no quorum", which
``meshop status`` turns into a non-zero exit before any KV read (each would wait for a leader and fail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ControlPlane:
    leader: str  # "address:port" of the Raft leader; "" when none is elected
    peers: tuple[str, ...]  # every server in the Raft configuration, "address:port"
    names: Mapping[str, str] = field(default_factory=dict)  # address -> node name, where meshop knows it

    @property
    def quorum(self) -> bool:
        return bool(self.leader)

    def host(self, peer: str) -> str:
        address = peer.rsplit(":", 1)[0].strip("[]")
        name = self.names.get(address)
        return f"{name} ({address})" if name else address

    @property
    def problem(self) -> str:
        """ "" when losing any one server keeps failover working; else why not, in one line."""
        servers = ", ".join(self.host(p) for p in self.peers) or "none known"
        if not self.quorum:
            return (
                f"no quorum: the Consul servers elect no leader ({len(self.peers)} Raft peer(s): {servers}); "
                "no write, failover or DNS change until a majority is back (containers and routes keep serving)"
            )
        if len(self.peers) == 1:
            host = self.host(self.peers[0])
            return f"a single Consul server ({host}): losing {host} stops failover (docs/install.md: three servers)"
        if len(self.peers) % 2 == 0:
            return (
                f"{len(self.peers)} Consul servers ({servers}): a quorum needs {len(self.peers) // 2 + 1}, so losing "
                f"{len(self.peers) // 2} stops failover (use an odd number: docs/install.md)"
            )
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "leader": self.leader or None,
            "servers": list(self.peers),
            "quorum": self.quorum,
            "problem": self.problem,
        }


def control_plane(leader: str, peers: tuple[str, ...], addresses: Mapping[str, str]) -> ControlPlane:
    """``addresses``: node name -> address (the agents' records), to name the servers' hosts."""
    return ControlPlane(leader, peers, {address: name for name, address in sorted(addresses.items())})
