"""One way to run a daemon's background thread: named, a daemon, with a stop event, stopped with a bound.

Every watch, stream follower, prober and loop thread is a ``DaemonThread``: ``stopping`` is the event
its body waits on (``stopping.wait(delay)`` instead of ``time.sleep``, so a stop interrupts a backoff),
``signal()`` sets it and runs the owner's ``on_stop`` (close a stream, wake a loop, shut a server down)
without waiting, ``join(timeout)`` waits at most ``timeout`` and reports a thread that did not stop (a
warning naming it; it is a daemon thread, so it never holds the process open), ``stop(timeout)`` is both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class DaemonThread:
    def __init__(
        self,
        name: str,
        target: Callable[[], None],
        *,
        on_stop: Callable[[], None] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.stopping = stopping or threading.Event()  # an owner's own event, when it has one already
        self._on_stop = on_stop
        self._thread = threading.Thread(target=target, name=name, daemon=True)

    def start(self) -> DaemonThread:
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def signal(self) -> None:
        """Ask the thread to stop and return at once (idempotent)."""
        first = not self.stopping.is_set()
        self.stopping.set()
        if first and self._on_stop is not None:
            self._on_stop()

    def join(self, timeout: float | None) -> bool:
        """Wait at most ``timeout`` for the thread to end; False, with a warning, when it is still running."""
        if not self.started or self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("thread %s did not stop within %.1f s; leaving it (a daemon thread)", self.name, timeout or 0)
            return False
        return True

    def stop(self, timeout: float | None = 5.0) -> bool:
        """``signal()`` then ``join(timeout)``; True when the thread has ended."""
        self.signal()
        return self.join(timeout)
