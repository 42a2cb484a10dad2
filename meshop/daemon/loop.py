"""The one reconcile loop every daemon runs: wake on change or every ``resync`` seconds, never die.

A pass is level-triggered: ``reconcile()`` reads the whole state it needs and returns the seconds
until it wants to run again (a retry or a health wait), or None. An exception fails the pass, is
logged and counted, and the loop carries on: one bad pass never stops the daemon. Python's cyclic
garbage collector is paused during a pass and settled after a clean one (``meshop.daemon.gcpolicy``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meshop import metrics
from meshop.daemon import gcpolicy
from meshop.daemon.wakeup import Wakeup
from meshop.errors import ConsulError

log = logging.getLogger(__name__)

Reconcile = Callable[[], float | None]


class ReconcileLoop:
    def __init__(
        self,
        component: str,
        reconcile: Reconcile,
        wakeup: Wakeup,
        *,
        resync: float = 30.0,
        error_retry: float = 2.0,
    ) -> None:
        self.component = component
        self.reconcile = reconcile
        self.wakeup = wakeup
        self.resync = resync
        self.error_retry = error_retry
        self.passes = 0
        # passes begun, and the number of the last one that ended: a caller that saw ``begun == n``
        # knows a pass that saw its change has ended once ``ended_begun > n`` (tests, a pass in flight)
        self.begun = 0
        self.ended_begun = 0
        self.last_success: float | None = None  # time.time() of the last clean pass
        self.last_error: str | None = None
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.wakeup.close()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def run_once(self) -> float | None:
        """One pass with metrics; returns the requested delay before the next one."""
        started = time.monotonic()
        self.begun += 1
        number = self.begun
        log.debug("%s: pass %d begins", self.component, number)
        try:
            with gcpolicy.paused():
                again = self.reconcile()
        except ConsulError as exc:
            self._failed(exc, started)
            return self.error_retry
        except Exception as exc:
            log.exception("%s: reconcile pass failed", self.component)
            self._failed(exc, started)
            return self.error_retry
        finally:
            self.ended_begun = number
        duration = time.monotonic() - started
        log.debug("%s: pass %d ended in %.0f ms", self.component, number, duration * 1000)
        self.passes += 1
        self.last_error = None
        self.last_success = time.time()
        metrics.reconcile_total.labels(self.component, "ok").inc()
        metrics.reconcile_duration_seconds.labels(self.component, "ok").observe(duration)
        metrics.last_successful_reconcile_timestamp_seconds.labels(self.component).set(self.last_success)
        gcpolicy.settle()
        return again

    def run_forever(self) -> None:
        """Run passes until ``stop()``: the first at once, then on every wake-up, requeue or resync."""
        reasons = {"start"}
        while not self._stopped.is_set():
            for reason in reasons:
                metrics.reconcile_wakeups_total.labels(self.component, reason).inc()
            delay = self.run_once()
            timeout = self.resync if delay is None else min(delay, self.resync)
            reasons = self.wakeup.wait(timeout) or {"resync" if delay is None else "requeue"}
            log.debug("%s: woken (%s)", self.component, ", ".join(sorted(reasons)))

    def _failed(self, exc: BaseException, started: float) -> None:
        self.passes += 1
        self.last_error = str(exc)
        metrics.reconcile_total.labels(self.component, "error").inc()
        metrics.reconcile_duration_seconds.labels(self.component, "error").observe(time.monotonic() - started)
        if isinstance(exc, ConsulError):
            log.warning("%s: reconcile pass failed: %s", self.component, exc)
