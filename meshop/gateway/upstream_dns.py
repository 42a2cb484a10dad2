"""A DNS responder on loopback serving the gateway's upstreams to its Caddy (``dns_wire`` answers).

One UDP socket, one thread; the table is an immutable mapping swapped whole by ``publish``, so a query
sees either the old or the new table, never half of one. It binds loopback only: nothing outside the
gateway host asks it anything.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from types import MappingProxyType

from meshop.errors import MeshopError
from meshop.gateway.dns_wire import Table, answer
from meshop.httpserver import parse_listen

log = logging.getLogger(__name__)


class UpstreamDNS:
    def __init__(self, listen: str = "127.0.0.1:0") -> None:
        host, port = parse_listen(listen)
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise MeshopError(f"upstream DNS address {listen!r} must be on loopback")
        except ValueError:
            raise MeshopError(f"upstream DNS address {listen!r} is not an IP address and port") from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise MeshopError(f"cannot listen for upstream DNS on {listen}: {exc}") from None
        self._sock.settimeout(0.5)  # so ``stop`` ends the thread without a packet arriving
        bound = self._sock.getsockname()
        self.address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        self._table: Table = MappingProxyType({})
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.queries = 0

    def publish(self, table: Table) -> None:
        self._table = MappingProxyType(dict(table))

    @property
    def table(self) -> Table:
        return self._table

    def start(self) -> UpstreamDNS:
        self._thread = threading.Thread(target=self._serve, name="upstream-dns", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                packet, peer = self._sock.recvfrom(512)
            except OSError:  # the timeout, or the socket closed under us
                if self._stopped.is_set():
                    return
                continue
            self.queries += 1
            try:
                response = answer(packet, self._table, self.queries)
                if response is not None:
                    self._sock.sendto(response, peer)
            except Exception:  # one bad packet never stops the responder
                log.exception("upstream DNS: could not answer a query")

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()
