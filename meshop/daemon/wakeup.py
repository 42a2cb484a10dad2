"""A wake-up signal shared by everything that can make a reconcile loop run again.

Watches, the Docker events stream and the periodic resync all ``notify()`` one ``Wakeup``; the loop
``wait()``s on it. Notifications coalesce: ten changes while a pass runs cause one more pass, which is
what a level-triggered loop wants.
"""

from __future__ import annotations

import threading


class Wakeup:
    """Coalescing, thread-safe wake-up with the reasons that arrived since the last wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._reasons: set[str] = set()
        self._closed = False

    def notify(self, reason: str) -> None:
        with self._cond:
            self._reasons.add(reason)
            self._cond.notify_all()

    def wait(self, timeout: float | None) -> set[str]:
        """Block until notified, closed or ``timeout``; returns (and clears) the reasons, empty on timeout."""
        with self._cond:
            if not self._reasons and not self._closed:
                self._cond.wait(timeout)
            reasons, self._reasons = self._reasons, set()
            return reasons

    def close(self) -> None:
        """Wake every waiter for good: used on shutdown."""
        with self._cond:
            self._closed = True
            self._reasons.add("shutdown")
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
