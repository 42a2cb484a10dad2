"""The Consul side of the single-writer volume locks (docs/stateful.md): one session, many locks.

The session has a TTL and **no** node health check: a flapping ``serfHealth`` would invalidate it
at any moment; with the TTL alone the holder decides, by renewing, how long it holds. Its lock-delay
is the safety margin of ``meshop.agent.stateful.timing``. A lock's value records who took it (node,
the Docker volume it mounts, wall time for people): the next holder reads it to tell a move from a
restart on the same node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from meshop.consul.sessions import Lock, Sessions
from meshop.consul.store import KVStore
from meshop.model import keys


@dataclass(frozen=True)
class LockRecord:
    """What a lock's value says about its latest holder (read strictly: a wrong type is no record)."""

    node: str
    volume: str  # the Docker volume the holder mounts
    since: float  # wall time, for people
    session: str | None  # the session holding it now (None: free)
    pending: bool = False  # the holder moved it here and has not finished restoring it yet
    renewed: float = 0.0  # holder's wall time of its last renewal: its copy wrote until GIVE_UP + K after

    @classmethod
    def parse(cls, value: bytes, session: str | None) -> LockRecord | None:
        try:
            data = json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        node, volume, since = data.get("node"), data.get("volume"), data.get("since")
        pending, renewed = data.get("pending", False), data.get("renewed", 0.0)
        if not isinstance(node, str) or not isinstance(volume, str) or not isinstance(pending, bool):
            return None
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) for t in (since, renewed)):
            return None
        return cls(node, volume, float(since), session, pending, float(renewed))

    def encode(self) -> bytes:
        data: dict[str, object] = {"node": self.node, "volume": self.volume, "since": self.since}
        if self.pending:
            data["pending"] = True
        if self.renewed:
            data["renewed"] = self.renewed
        return json.dumps(data, sort_keys=True).encode()


class VolumeLocks:
    """Session and lock calls for one agent; every method raises ``ConsulError`` when Consul fails."""

    def __init__(self, store: KVStore, node: str) -> None:
        self.sessions = Sessions(store)
        self.store = store
        self.node = node

    def create_session(self, ttl: float, lock_delay: float) -> str:
        return self.sessions.create(f"meshop-volumes-{self.node}", lock_delay=int(lock_delay), ttl=int(ttl), serf=False)

    def renew(self, session: str) -> bool:
        return self.sessions.renew(session)

    def destroy(self, session: str) -> None:
        self.sessions.destroy(session)

    def read(self, service: str, volume: str) -> LockRecord | None:
        entry = self.store.get(keys.volume_lock(service, volume))
        if entry is None:
            return None
        return LockRecord.parse(entry.value, entry.session) or LockRecord("", "", 0.0, entry.session)

    def acquire(self, service: str, volume: str, session: str, record: LockRecord) -> bool:
        return self.sessions.acquire(keys.volume_lock(service, volume), session, record.encode()) is not None

    def release(self, service: str, volume: str, session: str, record: LockRecord) -> None:
        """Release without invalidating the session: no lock-delay, the next holder may take it at once.
        The record stays (a release writes the value too): the next holder reads whose copy it was."""
        self.sessions.release(Lock(keys.volume_lock(service, volume), session), record.encode())

    def keep_aside(self, docker_volume: str, record: dict[str, object]) -> None:
        """Record a stale copy this node keeps (``meshop volume ls`` lists ``volumes/kept/<node>/``)."""
        self.store.put(keys.kept_volume(self.node, docker_volume), json.dumps(record, sort_keys=True))

    def forget_kept(self, docker_volume: str) -> None:
        """The kept volume is gone (the user removed it): so is its record."""
        self.store.delete(keys.kept_volume(self.node, docker_volume))
