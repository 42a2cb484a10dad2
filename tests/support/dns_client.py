"""A web client that finds a site through DNS, as the fleet's users' browsers and scripts do: one GET per
request on a new connection, no retries of the request itself. Shared by the fleet tests (in a thread)
and benchmarks/fleet_gateway_failover.py (a process per client kind in the fleet's client namespace).

Client kinds: ``first`` sends to the answer's first address only; ``next`` on a failed connection tries
the answer's next address (as browsers do); ``pinned`` is ``first`` with ``prefer`` put first whenever the
answer holds it (the worst case: it leaves that address only when the record does). Every kind caches
each answer for its TTL, as a caching stub resolver does (``cache=False``: ask BIND on every request).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

import dns.resolver

GATEWAY_PORT = 80


def get(address: str, host: str, port: int = GATEWAY_PORT, timeout: float = 1.0) -> bool:
    """One GET with ``Host: host``; True for a 200."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host, "Connection": "close"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class DnsClient:
    server: str  # the DNS server's address (port 53)
    name: str
    try_next: bool = False
    prefer: str = ""
    cache: bool = True
    timeout: float = 1.0
    _resolver: dns.resolver.Resolver = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._resolver = dns.resolver.Resolver(configure=False)
        self._resolver.nameservers = [self.server]
        self._resolver.lifetime = self.timeout
        if self.cache:
            self._resolver.cache = dns.resolver.Cache()  # keeps each answer for its TTL

    def addresses(self) -> list[str]:
        try:
            found = [r.address for r in self._resolver.resolve(self.name, "A")]
        except Exception:  # noqa: BLE001 - a failed resolution is a failed request
            return []
        return sorted(found, key=lambda a: a != self.prefer)  # stable: the answer's order otherwise

    def request(self) -> tuple[bool, str, str]:
        """(ok, the address that answered or was tried last, the answer's first address)."""
        addresses = self.addresses()
        used = ""
        for used in addresses if self.try_next else addresses[:1]:
            if get(used, self.name, timeout=self.timeout):
                return True, used, addresses[0]
        return False, used, addresses[0] if addresses else ""


@dataclass
class DnsClientLoop:
    """``client.request()`` in a thread every ``interval`` seconds until stopped; failures kept as
    (start, end, address tried)."""

    client: DnsClient
    interval: float = 0.05
    ok: int = 0
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> DnsClientLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            ok, used, _ = self.client.request()
            if ok:
                self.ok += 1
            else:
                self.failures.append((began, time.monotonic(), used))
            self._stop.wait(self.interval)

    def stop(self) -> DnsClientLoop:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        return self

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)
