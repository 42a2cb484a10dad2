"""A DNS responder serving upstreams to a Caddy (``dns_wire`` answers): the gateway's and a node's.

This side binds the socket (so the address is known at once), writes the table to a file, atomically,
on every ``publish``, and runs the answering loop in a child process (``dns_child``) that inherits the
socket: a parent that hangs leaves Caddy its last answers, one that dies takes the child with it. The
child is started and stopped by its PID.

Where Caddy asks (issue 24): a Caddy outlives a SIGKILLed gateway (it keeps serving its last config) and
keeps asking the responder's address. A loopback UDP port is then free for *any* local user to bind and
answer with upstreams of their choice (Consul's API on the gateway host, say). So by default (``unix``)
the responder listens on a unix SEQPACKET socket (Caddy 2.6: ``resolvers unixpacket//PATH``) inside a
folder only this user can enter and nobody else can create: a fresh ``mkdtemp`` folder (mode 0700) in
``folder`` when that is private to this user (the managed Caddy's own folder), else in the system's temp
folder — and then the folder is emptied but never removed, since a removed name in a world-writable
``/tmp`` could be created again by anyone while a Caddy still asks it. The folder holding that folder
must keep others from renaming it (private, or sticky as ``/tmp`` is): a ``TMPDIR`` writable by all and
not sticky let another user rename the responder's folder away and put its own, with its own socket or
table, under the name (``renamable_by_others``; refused at start). ``unix:PATH`` names the socket
(its folder must be this user's or root's and writable by nobody else, and the folder above it may not be
renamable by others either); ``IP:PORT`` (loopback UDP) stays
for a Caddy that runs as another user, with the squatting risk above (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from types import MappingProxyType

from meshop.caddy.dns_wire import Table
from meshop.daemon.status_server import parse_listen
from meshop.errors import DriverError, MeshopError

log = logging.getLogger(__name__)

UNIX = "unix"
UNIX_NETWORK = "unixpacket/"  # Caddy's network address prefix: ``unixpacket//run/x.sock``
SOCKET_NAME = "dns.sock"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, NUL included


def private_folder(path: Path) -> str | None:
    """Why no other user could be kept from creating entries in ``path``, or None when none can: it is a
    real folder (not a symlink), owned by this user or root, writable by neither group nor others."""
    try:
        info = path.lstat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a folder"
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to uid {info.st_uid}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others"
    return None


def renamable_by_others(path: Path) -> str | None:
    """Why another user could rename an entry this user makes in ``path``, or None: a private folder
    (``private_folder``), or one whose sticky bit keeps others from renaming entries they do not own
    (``/tmp``), owned by this user or root. A fresh 0700 ``mkdtemp`` folder keeps others out of it, not
    from renaming it away in a parent they may write (issue 24 review: a ``TMPDIR`` writable by all)."""
    problem = private_folder(path)
    if problem is None:
        return None
    info = path.stat()
    if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX and info.st_uid in (os.getuid(), 0):
        return None
    return f"{problem}, and not sticky"


class UpstreamDNS:
    def __init__(self, listen: str = UNIX, folder: Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="meshop-dns-", dir=self._base(folder)))
        self._keep_dir = folder is None or self._dir.parent != folder  # in /tmp: never free the name
        try:
            self._sock, self.address, self._kind = self._bind(listen)
        except BaseException:
            self._remove_dir()
            raise
        self.table_file = self._dir / "table.json"
        self.table_file = self._dir / "table.json"
        self._table: Table = MappingProxyType({})
        self._write({})
        self.child: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _base(folder: Path | None) -> str:
        """``folder`` when a socket there is private and short enough, else the temp folder, which must
        keep others from renaming what this user makes there (``renamable_by_others``)."""
        room = MAX_SOCKET_PATH - len("/meshop-dns-xxxxxxxx/") - len(SOCKET_NAME)
        if folder is not None and len(str(folder)) <= room and private_folder(folder) is None:
            return str(folder)
        temp = tempfile.gettempdir()
        problem = renamable_by_others(Path(temp))
        if problem is not None:
            raise MeshopError(
                f"upstream DNS socket: temp folder {problem}, so another user could swap the responder's "
                "folder for one of its own; set TMPDIR to a private folder or a sticky one like /tmp"
            )
        return temp

    def _bind(self, listen: str) -> tuple[socket.socket, str, str]:
        """The listening socket, the address Caddy asks (``unixpacket//PATH`` or ``IP:PORT``) and its kind."""
        if listen == UNIX or listen.startswith(f"{UNIX}:"):
            path = self._dir / SOCKET_NAME if listen == UNIX else Path(listen[len(UNIX) + 1 :])
            if not path.is_absolute() or len(str(path)) > MAX_SOCKET_PATH:
                raise MeshopError(
                    f"upstream DNS socket {listen!r}: an absolute path of at most {MAX_SOCKET_PATH} bytes"
                )
            problem = private_folder(path.parent) or renamable_by_others(path.parent.parent)
            if problem is not None:
                raise MeshopError(f"upstream DNS socket {listen!r}: another user could take it ({problem})")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                if path.is_socket():
                    path.unlink()  # our own folder: a socket left by an earlier run of ours
                sock.bind(str(path))
                sock.listen(64)
            except OSError as exc:
                sock.close()
                raise MeshopError(f"cannot listen for upstream DNS on {path}: {exc}") from None
            self._socket_path: Path | None = path
            return sock, f"{UNIX_NETWORK}{path}", UNIX
        self._socket_path = None
        host, port = parse_listen(listen)
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise MeshopError(f"upstream DNS address {listen!r} must be on loopback")
        except ValueError:
            raise MeshopError(
                f"upstream DNS address {listen!r} is not an IP address and port, unix or unix:PATH"
            ) from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise MeshopError(f"cannot listen for upstream DNS on {listen}: {exc}") from None
        bound = sock.getsockname()
        address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        return sock, address, "6" if family == socket.AF_INET6 else "4"

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
        args = [
            sys.executable,
            "-m",
            "meshop.caddy.dns_child",
            str(fd),
            str(self.table_file),
            str(os.getpid()),
            self._kind,
        ]
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
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)
        self._remove_dir()

    def _remove_dir(self) -> None:
        """Remove the table and socket; the folder itself only where nobody else could create it again."""
        if self._keep_dir:
            for entry in self._dir.iterdir() if self._dir.is_dir() else ():
                entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(self._dir, ignore_errors=True)
