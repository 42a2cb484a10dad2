"""The shared reconcile loop backs off on failed passes and resets on a clean one (a real ``ReconcileLoop``
on its own thread; a ``Wakeup`` that records how long the loop asked to wait)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshop import metrics
from meshop.daemon.backoff import BackoffPolicy
from meshop.daemon.loop import PASS_BACKOFF, ReconcileLoop
from meshop.daemon.wakeup import Wakeup
from meshop.errors import ConsulUnavailable
from tests.support.procs import wait_until

QUICK = BackoffPolicy(base=0.01, maximum=0.04, factor=2.0, jitter=0.2)
RESYNC = 60.0


class RecordingWakeup(Wakeup):
    """A real ``Wakeup`` that remembers every timeout the loop waited with."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None) -> set[str]:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def scripted(outcomes: list[BaseException | None]) -> Callable[[], float | None]:
    """A pass that raises the next scripted error (None: succeeds), then succeeds for good."""
    queue = list(outcomes)

    def reconcile() -> float | None:
        outcome = queue.pop(0) if queue else None
        if outcome is not None:
            raise outcome
        return None

    return reconcile


def failures_gauge(component: str) -> float:
    return metrics.reconcile_consecutive_failures.labels(component)._value.get()


def test_failed_passes_back_off_exponentially_and_a_clean_pass_resets() -> None:
    down = ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
    bug = RuntimeError("a bug in a pass (test)")
    wakeup = RecordingWakeup()
    loop = ReconcileLoop(
        "test-backoff",
        scripted([down, bug, down, down, None, down, None]),
        wakeup,
        resync=RESYNC,
        backoff=QUICK,
        random=lambda: 0.5,  # a tenth off every delay
    )
    thread = loop.start("test-loop")
    try:
        wait_until(lambda: len(wakeup.timeouts) >= 5, 5, what="four failed passes and a clean one")
        assert wakeup.timeouts[:5] == pytest.approx([0.009, 0.018, 0.036, 0.036, RESYNC])  # grew, capped, reset
        assert loop.streak.failures == 0 and failures_gauge("test-backoff") == 0
        assert loop.last_error is None and loop.last_success is not None
        wakeup.notify("poke")  # the next pass fails again: it starts from the base, not where it left off
        wait_until(lambda: len(wakeup.timeouts) >= 7, 5, what="one more failure and a clean pass")
        assert wakeup.timeouts[5:7] == pytest.approx([0.009, RESYNC])
    finally:
        assert thread.stop(timeout=5)
    assert loop.passes == 7


def test_the_gauge_counts_failed_passes_in_a_row() -> None:
    loop = ReconcileLoop("test-gauge", scripted([RuntimeError("x")] * 3), Wakeup(), backoff=QUICK)
    delays = [loop.run_once() for _ in range(3)]
    assert failures_gauge("test-gauge") == 3 and loop.last_error == "x"
    assert delays == sorted(delays) and all(d is not None and d <= QUICK.maximum for d in delays)
    assert loop.run_once() is None  # clean: the pass's own answer, not a retry
    assert failures_gauge("test-gauge") == 0


def test_a_wake_up_runs_a_pass_at_once_even_in_a_long_backoff() -> None:
    """Recovery is not slower than before: a watch that sees Consul again wakes the loop right away."""
    wakeup = Wakeup()
    slow = BackoffPolicy(base=30.0, maximum=30.0)
    loop = ReconcileLoop("test-wake", scripted([ConsulUnavailable("down (test)")]), wakeup, backoff=slow)
    thread = loop.start("test-wake-loop")
    try:
        wait_until(lambda: loop.streak.failures == 1, 5, what="the failed first pass")
        wakeup.notify("desired")
        wait_until(lambda: loop.last_success is not None, 5, what="a clean pass right after the wake-up")
    finally:
        assert thread.stop(timeout=5)


def test_the_default_policy_is_never_slower_than_the_old_fixed_retry_at_first_and_caps_at_ten() -> None:
    assert PASS_BACKOFF.delay(1, lambda: 0.0) == 2.0  # the old fixed retry, at most
    assert PASS_BACKOFF.delay(1, lambda: 0.999) >= 1.6
    assert [PASS_BACKOFF.delay(n, lambda: 0.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
