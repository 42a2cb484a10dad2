"""What ``meshop logs`` and ``meshop exec`` do: find replicas through Consul, reach their nodes over SSH
(one connection per node, host keys verified), run ``docker logs`` / ``docker exec`` there.

Lines from several replicas are merged: as they arrive with ``--follow``, else in timestamp order. Each
line carries its node/replica; the text is the container's and is hostile (the CLI strips terminal
control sequences before printing it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from meshop.client.replicas import Found, Replica, find, logs_command
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.errors import MeshopError, NotFound
from meshop.model import keys
from meshop.ssh.hostkeys import Trust
from meshop.ssh.session import KnownHosts, SshError, SshSession, connect
from meshop.ssh.target import SshTarget


@dataclass(frozen=True)
class SshOptions:
    """How to reach nodes: the same user, port and key for all; host keys from known_hosts."""

    user: str = "root"
    port: int = 22
    identity: str | None = None
    trust: Trust = field(default_factory=Trust)
    known: KnownHosts | None = None


def locate(
    config: ConsulConfig,
    service: str,
    *,
    node: str | None,
    replica: int | None,
    local_cluster: bool,
    trust_records: bool = False,
) -> Found:
    """Where ``service``'s replicas run, each with the address its node's inventory entry allows."""
    store = KVStore(config)
    observed, nodes, inventory = store.list_together([keys.OBSERVED, keys.NODES, keys.INVENTORY_NODES])
    found = find(
        service,
        observed,
        nodes,
        node=node,
        replica=replica,
        local_cluster=local_cluster,
        inventory=inventory,
        trust_records=trust_records,
    )
    if not found.replicas:
        where = "".join(f" on node {node}" if node else "") + (
            f" with replica {replica}" if replica is not None else ""
        )
        why = f" ({'; '.join(found.skipped[:5])})" if found.skipped else ""
        raise NotFound(f"no replica of service {service!r}{where} is reported by any agent{why}")
    return found


class Connections:
    """One SSH session per node address, opened on first use, all closed together."""

    def __init__(self, options: SshOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self._sessions: dict[str, SshSession] = {}
        self._lock = threading.Lock()

    def to(self, replica: Replica) -> SshSession:
        with self._lock:
            session = self._sessions.get(replica.address)
            if session is None:
                target = SshTarget(replica.address, self.options.user, self.options.port)
                session = connect(
                    target, self.options.trust, self.options.known, identity=self.options.identity, say=self.say
                )
                self._sessions[replica.address] = session
            return session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()


@dataclass(frozen=True)
class LogLine:
    replica: Replica
    timestamp: str  # RFC 3339 from docker, "" when the line had none
    text: bytes


def _split(replica: Replica, raw: bytes) -> LogLine:
    stamp, sep, rest = raw.partition(b" ")
    if sep and stamp[:4].isdigit() and stamp.endswith(b"Z"):
        return LogLine(replica, stamp.decode("ascii", "replace"), rest)
    return LogLine(replica, "", raw)


def stream_logs(
    replicas: tuple[Replica, ...],
    connections: Connections,
    *,
    follow: bool,
    since: str | None,
    tail: int | None,
) -> Iterator[LogLine | MeshopError]:
    """Lines from every replica. With ``follow`` in arrival order until every stream ends (or the caller
    stops iterating); else all of them, sorted by timestamp. A node that cannot be reached yields its
    error once and the others go on."""
    out: queue.Queue[LogLine | MeshopError | None] = queue.Queue(maxsize=10_000)

    def pump(replica: Replica) -> None:
        try:
            session = connections.to(replica)
            for raw in session.lines(logs_command(replica.container_id, follow=follow, since=since, tail=tail)):
                out.put(_split(replica, raw))
        except SshError as exc:
            out.put(MeshopError(f"{replica.label}: {exc}"))
        finally:
            out.put(None)

    threads = [threading.Thread(target=pump, args=(r,), daemon=True, name=f"logs-{r.label}") for r in replicas]
    for thread in threads:
        thread.start()
    running = len(threads)
    collected: list[LogLine] = []
    while running:
        item = out.get()
        if item is None:
            running -= 1
        elif follow or isinstance(item, MeshopError):
            yield item
        else:
            collected.append(item)
    yield from sorted(collected, key=_order)


def _order(line: LogLine) -> tuple[str, Replica]:
    """Docker's RFC 3339 stamps drop trailing zeros of the fraction: pad it so text order is time order."""
    head, _, frac = line.timestamp.rstrip("Z").partition(".")
    return f"{head}.{frac.ljust(9, '0')}", line.replica
