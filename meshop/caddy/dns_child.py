"""The upstream DNS responder's own process: answers on an inherited socket from a table file.

``python -m meshop.caddy.dns_child FD TABLE_FILE PARENT_PID KIND``: KIND ``unix`` is a listening unix
SEQPACKET socket (one DNS message per packet, a connection per lookup from Go's resolver; served with a
selector so no connection stalls another), ``4``/``6`` a UDP socket. Its parent (the gateway or an
agent, ``UpstreamDNS``) binds the socket, hands it over, and replaces ``TABLE_FILE`` atomically whenever
upstreams change; this process re-reads the file when it changed and answers every query from it. A
separate process, so a parent that hangs (SIGSTOP, a stuck pass) leaves Caddy its last answers instead of
lookups that time out; it exits with its parent (``PR_SET_PDEATHSIG``), removing the folder's files but
not the folder (``upstream_dns``: nobody else may create its name), after which Caddy falls back to the
static upstreams of its config at once (the socket or port refuses). Imports nothing heavy: it starts in ~0.1 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

from meshop.caddy.dns_wire import Table, answer
from meshop.model.digits import PORT_MAX, parse_uint

PR_SET_PDEATHSIG = 1
FD_MAX = 2**31 - 1
PID_MAX = 2**22  # Linux's pid_max ceiling


def _is_port(value: object) -> bool:
    """A JSON port number: an int (not a bool) in 1..65535."""
    return type(value) is int and 0 < value <= PORT_MAX


def read_table(path: str) -> Table:
    """The table in ``path``; entries that are not (address, port) lists are skipped, a bad file is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    table = {}
    for name, pairs in data.items() if isinstance(data, dict) else ():
        if isinstance(name, str) and isinstance(pairs, list):
            table[name] = tuple(
                (p[0], p[1])
                for p in pairs
                if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _is_port(p[1])
            )
    return table


class Answers:
    """The table file, re-read when it changed, and the answer to one query from it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.table: Table = {}
        self.count = 0

    def __call__(self, packet: bytes) -> bytes | None:
        self.count += 1
        try:
            info = os.stat(self.path)
            if (info.st_ino, info.st_mtime_ns) != self.stamp:
                self.stamp, self.table = (info.st_ino, info.st_mtime_ns), read_table(self.path)
        except OSError:
            pass  # keep the last table
        try:
            return answer(packet, self.table, self.count)  # the count rotates an answer that must be cut
        except ValueError:
            return None


def serve(sock: socket.socket, path: str) -> None:
    """UDP: one datagram in, one out."""
    answers = Answers(path)
    while True:
        packet, peer = sock.recvfrom(4096)  # a query with an OPT record may exceed 512
        try:
            response = answers(packet)
            if response is not None:
                sock.sendto(response, peer)
        except OSError:  # one bad packet or peer never stops the responder
            continue


MAX_CONNECTIONS = 256  # Caddy opens one per lookup and closes it; more than this are closed at once


def serve_unix(listener: socket.socket, path: str) -> None:
    """Unix SEQPACKET: each packet a query, each answer a packet back on its connection."""
    answers = Answers(path)
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    if len(selector.get_map()) > MAX_CONNECTIONS:
                        conn.close()
                        continue
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                packet = sock.recv(4096)
                response = answers(packet) if packet else None
                if response is not None:
                    sock.send(response)
                if packet:
                    continue
            except OSError:
                pass
            selector.unregister(sock)
            sock.close()


def main(argv: list[str]) -> int:
    fd = parse_uint(argv[0], limit=FD_MAX) if argv else None
    parent = parse_uint(argv[2], limit=PID_MAX) if len(argv) >= 3 else None
    if fd is None or parent is None:
        print("usage: python -m meshop.caddy.dns_child FD TABLE_FILE PARENT_PID [4|6|unix] (started by meshop)")
        return 2
    path = argv[1]
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kind = argv[3] if len(argv) > 3 else "4"
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)
    else:
        sock = socket.socket(socket.AF_INET6 if kind == "6" else socket.AF_INET, socket.SOCK_DGRAM, fileno=fd)
    sock.settimeout(None)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            (serve_unix if kind == "unix" else serve)(sock, path)
    finally:
        if os.getppid() != parent:  # the parent died (a clean stop cleans up itself)
            # the files only: the folder stays, so nobody else can create its name again (upstream_dns)
            for entry in Path(path).parent.iterdir():
                with contextlib.suppress(OSError):
                    entry.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
