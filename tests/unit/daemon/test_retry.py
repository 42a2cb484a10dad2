"""``retry_call``: tenacity waiting by the shared policy; only the listed errors are retried."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshop.daemon.backoff import BackoffPolicy
from meshop.daemon.retry import retry_call

POLICY = BackoffPolicy(base=0.5, maximum=1.5, jitter=0.2)


class Flaky(Exception):
    pass


def failing(times: int, error: type[Exception] = Flaky) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error(f"attempt {len(calls)} failed")
        return "done"

    return calls, call


@pytest.mark.parametrize(
    ("fails", "attempts", "result", "slept"),
    [
        (0, 3, "done", []),
        (2, 3, "done", [0.5, 1.0]),
        (3, 4, "done", [0.5, 1.0, 1.5]),  # capped
        (3, 3, Flaky, [0.5, 1.0]),  # out of attempts: the last error, as it was
    ],
    ids=["first-try", "third-try", "capped", "gives-up"],
)
def test_retry_table(fails: int, attempts: int, result: object, slept: list[float]) -> None:
    calls, call = failing(fails)
    sleeps: list[float] = []
    told: list[tuple[int, str, float]] = []

    def run() -> str:
        return retry_call(
            call,
            attempts=attempts,
            policy=POLICY,
            retry_on=(Flaky,),
            sleep=sleeps.append,
            random=lambda: 0.0,
            on_retry=lambda n, exc, delay: told.append((n, str(exc), delay)),
        )

    if result is Flaky:
        with pytest.raises(Flaky, match=f"attempt {fails} failed"):
            run()
    else:
        assert run() == result
    assert sleeps == slept
    assert [(n, delay) for n, _, delay in told] == list(enumerate(slept, start=1))
    assert len(calls) == min(fails + 1, attempts)


def test_other_errors_are_not_retried() -> None:
    calls, call = failing(1, ValueError)
    with pytest.raises(ValueError):
        retry_call(call, attempts=5, policy=POLICY, retry_on=(Flaky,), sleep=lambda _: None)
    assert len(calls) == 1


def test_jitter_comes_from_the_injected_random() -> None:
    sleeps: list[float] = []
    _, call = failing(2)
    retry_call(call, attempts=3, policy=POLICY, retry_on=(Flaky,), sleep=sleeps.append, random=lambda: 1.0)
    assert sleeps == pytest.approx([0.4, 0.8])
