"""The single writer's timing, in one place: why no other node can take a volume lock while a copy runs.

The holder renews its Consul session every ``RENEW_EVERY`` seconds and remembers, on its monotonic
clock, when the last *successful* renewal request **started** (``t0``). Consul processed that request
at some moment ``p >= t0``, when the session was valid. Whatever invalidates the session afterwards
(TTL expiry no earlier than ``TTL`` after ``p``, an operator's ``session destroy``, the Consul node's
deregistration), Consul then refuses the lock to every other session for ``LOCK_DELAY`` seconds. So
no other node can hold the lock before ``p + LOCK_DELAY >= t0 + LOCK_DELAY`` (the stronger TTL bound,
``t0 + TTL + LOCK_DELAY``, needs the TTL path; we do not rely on it).

The holder's watchdog looks every ``WATCH_TICK`` seconds; once ``GIVE_UP`` seconds have passed since
``t0`` it kills (SIGKILL) every container of the service, which takes at most ``KILL_BUDGET`` seconds
on a Docker engine that answers. Two monotonic clocks (the holder's, the Consul leader's) may run at
rates differing by ``RATE_ERROR``. The invariant, checked at import and by a unit test:

    (GIVE_UP + WATCH_TICK + KILL_BUDGET) * (1 + RATE_ERROR) < LOCK_DELAY

A start is allowed only while the lock is fresher than ``START_FRESH``, so a container that the
executor starts just before the give-up moment is still inside the budget (the watchdog keeps killing
every copy of an unlocked service each tick, late starts included).

The watchdog is a thread of the agent: it dies with it. The **fence** (``fence.py``, its own process
and systemd unit) holds the same bound without the agent: after each successful renewal the agent
writes the service's lease, ``deadline = t0 + GIVE_UP`` on CLOCK_MONOTONIC (one clock for every process
of the host), and the fence kills, every ``FENCE_TICK``, each running stateful copy whose lease is
missing, untrusted or past its deadline. So, with the agent dead or hung:

    (GIVE_UP + FENCE_TICK + KILL_BUDGET) * (1 + RATE_ERROR) < LOCK_DELAY

The agent starts no copy while the fence's heartbeat is older than ``FENCE_STALE``.
"""

from __future__ import annotations

TTL = 10.0  # session TTL, seconds (Consul's minimum); Consul invalidates between TTL and 2*TTL after p
LOCK_DELAY = 15.0  # seconds Consul refuses the lock to others after the session is invalidated (max 60)
RENEW_EVERY = 2.0  # seconds between renewals
GIVE_UP = 7.0  # R: seconds after the last successful renewal's start at which the holder kills its copy
WATCH_TICK = 0.2  # seconds between the watchdog's looks
KILL_BUDGET = 5.0  # K: seconds Docker may take to SIGKILL a container and report it gone
RATE_ERROR = 0.01  # two monotonic clocks' rates may differ by this fraction
START_FRESH = GIVE_UP - 2 * RENEW_EVERY  # seconds: a lock older than this starts nothing new
RENEW_TIMEOUT = RENEW_EVERY  # seconds one renewal request may take before it counts as failed
FENCE_TICK = 0.2  # seconds between the fence's looks (the agent-independent watchdog, fence.py)
FENCE_STALE = 3.0  # seconds: a fence heartbeat older than this starts nothing new (no fence watches)


def margin() -> float:
    """Seconds between the latest moment the old copy is dead and the earliest another node may lock,
    whichever kills it: the agent's watchdog or the fence."""
    return LOCK_DELAY - (GIVE_UP + max(WATCH_TICK, FENCE_TICK) + KILL_BUDGET) * (1 + RATE_ERROR)


def check() -> None:
    """Raise when the constants break the single-writer argument above."""
    if margin() <= 0:
        raise AssertionError(f"single-writer timing broken: margin {margin():.2f}s <= 0")
    if GIVE_UP < 2 * RENEW_EVERY or START_FRESH <= 0:
        raise AssertionError("one lost renewal must not kill the service: GIVE_UP >= 2 * RENEW_EVERY")
    if not 10.0 <= TTL <= 86400.0 or not 0 < LOCK_DELAY <= 60.0:
        raise AssertionError("Consul accepts a TTL of 10s..24h and a lock-delay of at most 60s")
    if not 0 < FENCE_TICK < FENCE_STALE:
        raise AssertionError("the fence must beat several times within FENCE_STALE")


check()
