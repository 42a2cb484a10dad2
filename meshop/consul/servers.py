"""Consul's Raft servers as its agent sees them: the leader and the peers (``/v1/status/leader``,
``/v1/status/peers``). Both answer from the servers' own Raft state, without a token and without a
leader, so ``meshop status`` can say "no quorum" where every KV read would wait and fail."""

from __future__ import annotations

from meshop.consul.client import consul, consul_errors, make_client
from meshop.consul.config import ConsulConfig


def raft_servers(config: ConsulConfig, client: consul.Consul | None = None) -> tuple[str, tuple[str, ...]]:
    """(leader ``address:port`` or "" when none is elected, every Raft peer's ``address:port``)."""
    client = client or make_client(config)
    with consul_errors(config, "reading the Consul servers (/v1/status/leader, /v1/status/peers)"):
        leader, peers = client.status.leader(), client.status.peers()
    leader = leader if isinstance(leader, str) else ""
    return leader, tuple(sorted(p for p in peers or () if isinstance(p, str)))
