"""The one backoff policy: growth, cap, jitter bounds, reset, and determinism with an injected random."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.daemon.backoff import Backoff, BackoffPolicy, Streak

EXACT = BackoffPolicy(base=2.0, maximum=10.0, factor=2.0, jitter=0.0)
JITTERED = BackoffPolicy(base=2.0, maximum=10.0, factor=2.0, jitter=0.2)


@pytest.mark.parametrize(
    ("policy", "failures", "draw", "expected"),
    [
        (EXACT, 0, 0.5, 0.0),  # no failure yet: no wait
        (EXACT, 1, 0.5, 2.0),  # the first retry is the base
        (EXACT, 2, 0.5, 4.0),
        (EXACT, 3, 0.5, 8.0),
        (EXACT, 4, 0.5, 10.0),  # capped
        (EXACT, 50, 0.5, 10.0),
        (EXACT, 10_000, 0.5, 10.0),  # days of failures: no OverflowError, still the cap
        (JITTERED, 1, 0.0, 2.0),  # a draw of 0 takes nothing off
        (JITTERED, 1, 0.5, 1.8),  # half the jitter fraction off
        (JITTERED, 1, 1.0, 1.6),  # at most a fifth off
        (JITTERED, 4, 1.0, 8.0),  # the cap is jittered too, never exceeded
        (BackoffPolicy(base=0.1, maximum=10.0, factor=3.0), 3, 0.7, 0.9),
        (BackoffPolicy(base=5.0, maximum=5.0, factor=1.0, jitter=1.0), 9, 0.25, 3.75),
    ],
    ids=[
        "none",
        "first",
        "second",
        "third",
        "capped",
        "long-capped",
        "no-overflow",
        "jitter-0",
        "jitter-half",
        "jitter-full",
        "jitter-at-cap",
        "factor-3",
        "constant-full-jitter",
    ],
)
def test_delay_table(policy: BackoffPolicy, failures: int, draw: float, expected: float) -> None:
    assert policy.delay(failures, lambda: draw) == pytest.approx(expected)


@given(
    failures=st.integers(min_value=1, max_value=5_000),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_jitter_stays_within_bounds_and_never_exceeds_the_schedule(failures: int, draw: float, jitter: float) -> None:
    """Jitter only takes off: never later than the plain exponential schedule, never over the cap."""
    policy = BackoffPolicy(base=0.5, maximum=30.0, factor=2.0, jitter=jitter)
    plain = min(30.0, 0.5 * 2.0 ** min(failures - 1, 100))
    delay = policy.delay(failures, lambda: draw)
    assert plain * (1 - jitter) - 1e-9 <= delay <= plain + 1e-9


@pytest.mark.parametrize(
    "bad",
    [
        {"base": 0.0},
        {"base": 5.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
    ids=["zero-base", "cap-below-base", "shrinking", "negative-jitter", "jitter-over-1"],
)
def test_policies_out_of_range_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        BackoffPolicy(**bad)


def test_a_streak_grows_caps_and_resets_on_success() -> None:
    streak = Streak(EXACT)
    assert [streak.failed() for _ in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert streak.failures == 5
    streak.succeeded()
    assert streak.failures == 0
    assert streak.failed() == 2.0  # reset: back to the base


def test_a_seeded_random_gives_the_same_jittered_delays() -> None:
    def delays(seed: int) -> list[float]:
        streak = Streak(JITTERED, random.Random(seed).random)
        return [streak.failed() for _ in range(8)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)
    assert all(lo <= d <= hi for d, (lo, hi) in zip(delays(7), [(1.6, 2.0), (3.2, 4.0), (6.4, 8.0)], strict=False))


def test_per_key_backoff_isolates_keys_and_uses_the_clock_it_is_given() -> None:
    draws = itertools.cycle([1.0])
    backoff = Backoff(base=1.0, maximum=4.0, jitter=0.5, random=lambda: next(draws))
    assert backoff.failed("a", now=100.0) == 0.5
    assert backoff.failed("a", now=100.5) == 1.0
    assert backoff.failed("b", now=100.5) == 0.5  # another key starts at its own base
    assert not backoff.due("a", 101.0) and backoff.due("a", 101.5)
    assert backoff.next_due(100.5) == 0.5  # "b" first
    assert backoff.failures("a") == 2
    backoff.succeeded("a")
    assert backoff.failures("a") == 0 and backoff.due("a", 0.0)
    backoff.forget_except({"a"})
    assert backoff.next_due(0.0) is None


def test_per_key_backoff_without_jitter_is_exact() -> None:
    """What the agent's holds rely on (tests/unit/agent/test_parts.py): no jitter unless asked for."""
    backoff = Backoff(base=1.0, maximum=10.0)
    assert [backoff.failed("x", 0.0) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
