"""The upstream DNS responder's own process: answers on an inherited UDP socket from a table file.

``python -m meshop.caddy.dns_child FD TABLE_FILE``: its parent (the gateway or an agent, ``UpstreamDNS``)
binds the socket, hands it over, and replaces ``TABLE_FILE`` atomically whenever upstreams change; this
process re-reads the file when it changed and answers every query from it. A separate process, so a
parent that hangs (SIGSTOP, a stuck pass) leaves Caddy its last answers instead of lookups that time
out; it exits with its parent (``PR_SET_PDEATHSIG``), after which Caddy falls back to the static
upstreams of its config at once (the port refuses). Imports nothing heavy: it starts in ~0.1 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import sys

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


def serve(sock: socket.socket, path: str) -> None:
    stamp: tuple[int, int] | None = None
    table: Table = {}
    count = 0
    while True:
        packet, peer = sock.recvfrom(4096)  # a query with an OPT record may exceed 512
        count += 1
        try:
            info = os.stat(path)
            if (info.st_ino, info.st_mtime_ns) != stamp:
                stamp, table = (info.st_ino, info.st_mtime_ns), read_table(path)
        except OSError:
            pass  # keep the last table
        try:
            response = answer(packet, table, count)  # the count rotates an answer that must be cut
            if response is not None:
                sock.sendto(response, peer)
        except (OSError, ValueError):  # one bad packet or peer never stops the responder
            continue


def main(argv: list[str]) -> int:
    fd = parse_uint(argv[0], limit=FD_MAX) if argv else None
    parent = parse_uint(argv[2], limit=PID_MAX) if len(argv) >= 3 else None
    if fd is None or parent is None:
        print("usage: python -m meshop.caddy.dns_child FD TABLE_FILE PARENT_PID [4|6] (started by meshop)")
        return 2
    path = argv[1]
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    family = socket.AF_INET6 if len(argv) > 3 and argv[3] == "6" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM, fileno=fd)
    sock.settimeout(None)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(sock, path)
    finally:
        if os.getppid() != parent:  # the parent died (a clean stop removes the folder itself)
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
