"""One call retried a few times on a transient error: tenacity, waiting by the shared backoff policy.

For a single call that may fail for a moment (a Docker pull: a registry hiccup, a dropped connection):
try it up to ``attempts`` times, waiting ``policy.delay(n)`` after the n-th failure, and re-raise the last
error. Not for what runs until stopped (a watch's blocking queries, an events stream: ``Streak`` in
``meshop.daemon.backoff``, because each answer changes the next request) nor for reconcile passes (the
loop backs off itself and a wake-up cuts the wait short).

This module is the only importer of tenacity (an import-linter contract), and only processes that retry
such a call load it: the agent, through its Docker driver, on its first pull (about 0.2 MB resident, 14
modules; measured in docs/architecture.md), not at start-up: about 10 ms of CPU, 3% of the agent's imports,
and a returning node's agent start is part of its return time (docs/fleet.md). The controller, the
gateway and the CLI's quick commands never do (``tests/unit/test_imports.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from meshop.daemon.backoff import BackoffPolicy, Random

if TYPE_CHECKING:
    import tenacity

T = TypeVar("T")
OnRetry = Callable[[int, BaseException, float], None]
"""Told before each wait: (attempt number that failed, its error, seconds until the next attempt)."""


def retry_call(
    call: Callable[[], T],
    *,
    attempts: int,
    policy: BackoffPolicy,
    retry_on: tuple[type[BaseException], ...],
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    random: Random | None = None,
) -> T:
    """``call()``, retried on ``retry_on`` errors up to ``attempts`` tries in all; other errors pass at once."""
    import tenacity  # on the first call (a pull), not in a (returning) agent's start-up

    def wait(state: tenacity.RetryCallState) -> float:
        return policy.delay(state.attempt_number, random)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        retry=tenacity.retry_if_exception_type(retry_on),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)
