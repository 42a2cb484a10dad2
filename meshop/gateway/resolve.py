"""The gateway resolves upstream hostnames itself, so its Caddy only ever dials checked IP addresses.

A node record's address may be a hostname, and a compromised node chooses it: handed to Caddy, a name
that resolves to 127.0.0.1 (or link-local, …) would turn a public route into a proxy to the gateway
host's own services, checked or not, since Caddy resolves at dial time (DNS rebinding included). The
daemon therefore asks ``NameResolver`` for the names its routes use; the planner (``plan_sites``)
checks every address they resolve to and serves only the acceptable ones, as IPs.

Lookups run in threads of their own, each bounded by ``timeout`` (a hung resolver never stalls the
reconcile loop), and are repeated every ``interval`` seconds; a changed answer (a late one too) wakes the daemon. A
lookup that fails or times out keeps the name's last answer (already checked); a name never resolved
has none, and its upstream is left out until it resolves.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable

from meshop.daemon.threads import DaemonThread

log = logging.getLogger(__name__)

Lookup = Callable[[str], tuple[str, ...]]


def system_lookup(name: str) -> tuple[str, ...]:
    """Every address ``getaddrinfo`` gives for ``name`` (IPv4 and IPv6), sorted, without zone ids."""
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return tuple(sorted({str(info[4][0]).split("%", 1)[0] for info in infos}))


class NameResolver:
    """Answers for the hostnames the daemon asks about (``answers``), refreshed in the background."""

    def __init__(
        self,
        on_change: Callable[[], None],
        lookup: Lookup = system_lookup,
        interval: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        self.on_change = on_change
        self.lookup = lookup
        self.interval = interval
        self.timeout = timeout
        self._answers: dict[str, tuple[str, ...]] = {}
        self._wanted: frozenset[str] = frozenset()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: DaemonThread | None = None

    def answers(self, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The current addresses of ``names``; a name not asked about before is looked up now (bounded)."""
        names = frozenset(names)
        with self._lock:
            self._wanted = names
            self._answers = {n: a for n, a in self._answers.items() if n in names}
            new = names - self._answers.keys()
        if new:
            self._resolve(new)
        with self._lock:
            return {n: self._answers[n] for n in names if n in self._answers}

    def refresh(self) -> None:
        """Look every wanted name up again; a changed answer runs ``on_change``."""
        with self._lock:
            wanted = self._wanted
        self._resolve(wanted)

    def start(self) -> NameResolver:
        self._thread = DaemonThread("gateway-resolver", self._run, stopping=self._stop).start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop(timeout=self.timeout + 5)
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the refresher must outlive any one bad answer
                log.exception("re-resolving upstream hostnames failed")

    def _resolve(self, names: Iterable[str]) -> None:
        """Look ``names`` up in parallel, each in a thread of its own; wait at most ``timeout`` in all.
        A name whose previous lookup still hangs is not asked again (no pile of stuck threads)."""
        threads = []
        with self._lock:
            for name in sorted(names):
                if name in self._in_flight:
                    continue
                self._in_flight.add(name)
                thread = threading.Thread(target=self._one, args=(name,), name="gateway-lookup", daemon=True)
                threads.append((name, thread))
        deadline = time.monotonic() + self.timeout
        for _, thread in threads:
            thread.start()
        for name, thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("resolving %r takes over %.1f s; keeping its last answer", name, self.timeout)

    def _one(self, name: str) -> None:
        try:
            found: tuple[str, ...] | None = tuple(sorted(set(self.lookup(name))))
        except Exception as exc:  # noqa: BLE001 - gaierror, UnicodeError, anything: the name stays unresolved
            log.warning("upstream hostname %r does not resolve: %s", name, exc)
            found = None
        with self._lock:
            self._in_flight.discard(name)
            changed = found is not None and name in self._wanted and self._answers.get(name) != found
            if changed and found is not None:
                log.info("upstream hostname %r resolves to %s", name, ", ".join(found) or "nothing")
                self._answers[name] = found
        if changed:
            self.on_change()  # also for an answer that came in after its waiter gave up
