"""Bridge a remote command to local file descriptors: ``meshop exec``.

With a TTY (both ends are terminals) the local terminal goes raw and bytes pass through both ways, as
``ssh -t`` does: what the user runs is theirs to see. Without one, stdin is copied to the command
(EOF closes its input), its stdout and stderr go to ours through ``clean`` (the CLI strips terminal
control sequences when our stdout is a terminal, and passes bytes unchanged into a pipe or file).
The command's exit code is returned.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable, Iterator
from typing import Any

Clean = Callable[[bytes], bytes]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _Lines:
    """Applies ``clean`` to whole lines (an escape sequence split across two reads is still seen whole)."""

    def __init__(self, fd: int, clean: Clean | None) -> None:
        self.fd, self.clean, self.buf = fd, clean, b""

    def write(self, data: bytes) -> None:
        if self.clean is None:
            os.write(self.fd, data)
            return
        self.buf += data
        head, sep, self.buf = self.buf.rpartition(b"\n")
        if sep:
            os.write(self.fd, self.clean(head + sep))
        if len(self.buf) > 65536:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            os.write(self.fd, self.clean(self.buf) if self.clean else self.buf)
            self.buf = b""


def bridge(
    chan: Any, *, tty: bool, stdin: int = 0, stdout: int = 1, stderr: int = 2, clean: Clean | None = None
) -> int:
    """Copy between ``chan`` (a started exec channel) and the descriptors until the command exits."""
    out, err = _Lines(stdout, None if tty else clean), _Lines(stderr, None if tty else clean)
    with _raw(stdin) if tty and os.isatty(stdin) else contextlib.nullcontext():
        watch_stdin = True
        while True:
            readable, _, _ = select.select([chan, stdin] if watch_stdin else [chan], [], [], 0.5)
            if stdin in readable:
                data = os.read(stdin, 65536)
                if data:
                    chan.sendall(data)
                else:
                    watch_stdin = False
                    if not tty:
                        chan.shutdown_write()
            while chan.recv_ready():
                out.write(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.write(chan.recv_stderr(65536))
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
    out.flush()
    err.flush()
    code = chan.recv_exit_status()
    chan.close()
    return code
