"""The one reconcile loop every daemon runs: wake on change or every ``resync`` seconds, never die.

A pass is level-triggered: ``reconcile()`` reads the whole state it needs and returns the seconds
until it wants to run again (a retry or a health wait), or None. An exception fails the pass, is
logged and counted, and the loop carries on: one bad pass never stops the daemon. Failed passes back
off as controller-runtime requeues do (``PASS_BACKOFF``: 2 s, 4 s, 8 s, then 10 s, each up to a fifth
shorter at random) and a clean pass resets that; a wake-up (a watch that sees Consul again, Docker's
events stream reconnecting) still runs a pass at once, so recovery does not wait for the backoff.
Python's cyclic garbage collector is paused during a pass and settled after a clean one
(``meshop.daemon.gcpolicy``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from meshop import metrics
from meshop.daemon import gcpolicy
from meshop.daemon.backoff import BackoffPolicy, Random, Streak
from meshop.daemon.threads import DaemonThread
from meshop.daemon.wakeup import Wakeup
from meshop.errors import ConsulError

log = logging.getLogger(__name__)

Reconcile = Callable[[], float | None]

# The first retry within the old fixed 2 s; capped at 10 s, the watches' own cap: a Consul that comes
# back is seen by a watch (which wakes the loop) within 10 s, and a failure no watch reports (a Caddy
# admin API or DNS server that is down) is not retried later than that either. A longer cap would save
# at most one cheap failed pass per 10 s.
PASS_BACKOFF = BackoffPolicy(base=2.0, maximum=10.0, factor=2.0, jitter=0.2)


class ReconcileLoop:
    def __init__(
        self,
        component: str,
        reconcile: Reconcile,
        wakeup: Wakeup,
        *,
        resync: float = 30.0,
        backoff: BackoffPolicy = PASS_BACKOFF,
        random: Random | None = None,
    ) -> None:
        self.component = component
        self.reconcile = reconcile
        self.wakeup = wakeup
        self.resync = resync
        self.streak = Streak(backoff, random)
        self.passes = 0
        # passes begun, and the number of the last one that ended: a caller that saw ``begun == n``
        # knows a pass that saw its change has ended once ``ended_begun > n`` (tests, a pass in flight)
        self.begun = 0
        self.ended_begun = 0
        self.last_success: float | None = None  # time.time() of the last clean pass
        self.last_error: str | None = None
        self._stopped = threading.Event()

    def start(self, name: str) -> DaemonThread:
        """Run passes on a background thread named ``name``; its ``stop(timeout)`` stops the loop too."""
        return DaemonThread(name, self.run_forever, on_stop=self.stop).start()

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
            return self._failed(exc, started)
        except Exception as exc:
            log.exception("%s: reconcile pass failed", self.component)
            return self._failed(exc, started)
        finally:
            self.ended_begun = number
        duration = time.monotonic() - started
        log.debug("%s: pass %d ended in %.0f ms", self.component, number, duration * 1000)
        self.passes += 1
        self.streak.succeeded()
        metrics.reconcile_consecutive_failures.labels(self.component).set(0)
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

    def _failed(self, exc: BaseException, started: float) -> float:
        """Count and log a failed pass; returns the backoff delay before the next try."""
        self.passes += 1
        self.last_error = str(exc)
        delay = self.streak.failed()
        metrics.reconcile_total.labels(self.component, "error").inc()
        metrics.reconcile_duration_seconds.labels(self.component, "error").observe(time.monotonic() - started)
        metrics.reconcile_consecutive_failures.labels(self.component).set(self.streak.failures)
        if isinstance(exc, ConsulError):
            log.warning(
                "%s: reconcile pass failed (%d in a row; next try in %.1f s): %s",
                self.component,
                self.streak.failures,
                delay,
                exc,
            )
        return delay
