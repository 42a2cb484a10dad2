"""Consul sessions and the locks they hold: the primitive under leader election.

A lock is a KV key acquired with a session. The session is tied to health checks (by default the node's
``serfHealth`` plus any TTL check the holder keeps passing), so a holder that dies or freezes loses the
lock as soon as its check goes critical; ``lock_delay`` then keeps others from grabbing it at once, so
a paused-but-alive old holder has time to notice before anyone else acts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshop.consul.client import (
    consul,  # py-consul, loaded the lean way (meshop.libs)
    consul_errors,
)
from meshop.consul.store import KVStore, TxnOp


@dataclass(frozen=True)
class Lock:
    """A held lock: which key, by which session; ``guard()`` makes writes conditional on holding it."""

    key: str
    session: str

    def guard(self) -> TxnOp:
        return TxnOp.check_session(self.key, self.session)


class Sessions:
    """Create, renew and destroy sessions; acquire and release locks with them."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.client = store.client
        self.config = store.config

    def create(
        self,
        name: str,
        *,
        checks: Sequence[str] | None = None,
        lock_delay: int = 5,
        ttl: int | None = None,
        serf: bool = True,
    ) -> str:
        """A new session; with ``checks`` it is invalidated when any of them goes critical. ``serf``
        False: no node health check at all, only the TTL (a volume lock, docs/stateful.md)."""
        all_checks: list[str] | None = None  # Consul's default: serfHealth
        if not serf:
            all_checks = list(checks or ())
        elif checks is not None:
            all_checks = ["serfHealth", *checks]
        with consul_errors(self.config, "creating a session"):
            return str(self.client.session.create(name=name, checks=all_checks, lock_delay=lock_delay, ttl=ttl))

    def renew(self, session: str) -> bool:
        """Extend a TTL session; False when Consul no longer knows it (the lock is gone)."""
        with consul_errors(self.config, "renewing a session"):
            try:
                return bool(self.client.session.renew(session))
            except consul.exceptions.NotFound:
                return False

    def alive(self, session: str) -> bool:
        with consul_errors(self.config, "reading a session"):
            _, info = self.client.session.info(session)
        return info is not None

    def named(self, name: str, node: str | None = None) -> list[str]:
        """The ids of every live session called ``name`` (with ``node``: made on that Consul node)."""
        with consul_errors(self.config, "listing sessions"):
            _, found = self.client.session.node(node) if node else self.client.session.list()
        return [str(s["ID"]) for s in found or () if s.get("Name") == name and s.get("ID")]

    def node_of(self, session: str) -> str | None:
        """The Consul node ``session`` was made on (None: Consul no longer knows it)."""
        with consul_errors(self.config, "reading a session"):
            _, info = self.client.session.info(session)
        node = info.get("Node") if isinstance(info, dict) else None
        return node if isinstance(node, str) and node else None

    def destroy(self, session: str) -> None:
        with consul_errors(self.config, "destroying a session"):
            self.client.session.destroy(session)

    def acquire(self, key: str, session: str, value: bytes | str = b"") -> Lock | None:
        """Try once to take the lock on ``key``; None if someone holds it or lock-delay is running."""
        full = self.store.full_key(key)
        with consul_errors(self.config, f"acquiring {full}"):
            taken = self.client.kv.put(full, value, acquire=session)
        return Lock(key, session) if taken else None

    def release(self, lock: Lock, value: bytes | str = "") -> None:
        """Let go of ``lock``; the key then holds ``value`` (Consul writes the value with the release)."""
        full = self.store.full_key(lock.key)
        with consul_errors(self.config, f"releasing {full}"):
            self.client.kv.put(full, value, release=lock.session)

    def holder(self, key: str) -> str | None:
        """The session holding ``key`` now, if any."""
        entry = self.store.get(key)
        return entry.session if entry else None
