"""A DNS responder on loopback serving upstreams to a Caddy (``dns_wire`` answers): the gateway's and a node's.

This side binds the UDP socket (so the address is known at once, port 0 included), writes the table
to a file, atomically, on every ``publish``, and runs the answering loop in a child process
(``dns_child``) that inherits the socket: a parent that hangs leaves Caddy its last answers, one that
dies takes the child with it. The child is started and stopped by its PID. Loopback only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import MappingProxyType

from meshop.caddy.dns_wire import Table
from meshop.daemon.status_server import parse_listen
from meshop.errors import DriverError, MeshopError

log = logging.getLogger(__name__)


class UpstreamDNS:
    def __init__(self, listen: str = "127.0.0.1:0") -> None:
        host, port = parse_listen(listen)
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise MeshopError(f"upstream DNS address {listen!r} must be on loopback")
        except ValueError:
            raise MeshopError(f"upstream DNS address {listen!r} is not an IP address and port") from None
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise MeshopError(f"cannot listen for upstream DNS on {listen}: {exc}") from None
        bound = self._sock.getsockname()
        self.address = f"[{bound[0]}]:{bound[1]}" if self._family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        self._dir = Path(tempfile.mkdtemp(prefix="meshop-dns-"))
        self.table_file = self._dir / "table.json"
        self._table: Table = MappingProxyType({})
        self._write({})
        self.child: subprocess.Popen[bytes] | None = None

    def publish(self, table: Table) -> None:
        table = MappingProxyType(dict(table))
        if table != self._table:
            self._write(table)
        self._table = table

    @property
    def table(self) -> Table:
        return self._table

    def _write(self, table: Table) -> None:
        temporary = self._dir / ".table.json.tmp"
        temporary.write_text(json.dumps({name: [list(p) for p in pairs] for name, pairs in table.items()}))
        os.replace(temporary, self.table_file)

    def start(self) -> UpstreamDNS:
        fd = self._sock.fileno()
        family = "6" if self._family == socket.AF_INET6 else "4"
        args = [sys.executable, "-m", "meshop.caddy.dns_child", str(fd), str(self.table_file), str(os.getpid()), family]
        try:
            self.child = subprocess.Popen(args, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise DriverError(f"cannot start the upstream DNS responder: {exc}") from None
        return self

    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()  # our own child, by its PID
            try:
                self.child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(timeout=5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
