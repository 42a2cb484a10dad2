"""Which stateful volumes are due: first look, interval after success, backoff after failure, requests."""

from __future__ import annotations

import math

import pytest

from meshop.agent.backup.schedule import Attempt, Candidate, due, due_at, retry_delay, wait_for

DB = Candidate("db", "data", 900.0)


@pytest.mark.parametrize(
    ("candidate", "last", "expected"),
    [
        pytest.param(DB, None, -math.inf, id="never-tried: at once"),
        pytest.param(DB, Attempt(100.0, True), 1000.0, id="success: every after it began"),
        pytest.param(DB, Attempt(100.0, False, 1), 110.0, id="first failure: 10s"),
        pytest.param(DB, Attempt(100.0, False, 3), 140.0, id="third failure: 40s"),
        pytest.param(DB, Attempt(100.0, False, 20), 400.0, id="many failures: capped at 300s"),
        pytest.param(Candidate("db", "data", 12.0), Attempt(100.0, False, 5), 112.0, id="never longer than every"),
        pytest.param(Candidate("db", "data", 900.0, "r1"), Attempt(100.0, True, 0, "r0"), -math.inf, id="new request"),
        pytest.param(Candidate("db", "data", 900.0, "r1"), Attempt(100.0, True, 0, "r1"), 1000.0, id="request done"),
    ],
)
def test_due_at(candidate: Candidate, last: Attempt | None, expected: float) -> None:
    assert due_at(candidate, last) == expected


def test_due_orders_most_overdue_first_and_waits_for_the_next() -> None:
    web = Candidate("web", "files", 60.0)
    db = Candidate("db", "data", 900.0)
    logs = Candidate("logs", "x", 30.0)
    history = {web.key: Attempt(0.0, True), db.key: Attempt(0.0, False, 1), logs.key: Attempt(50.0, True)}
    assert due([web, db, logs], history, 70.0) == [db, web]
    assert due([web, db, logs], history, 5.0) == []
    assert wait_for([web, db, logs], history, 5.0) == 5.0
    assert wait_for([web, db, logs], history, 75.0) == 0.0
    assert wait_for([], history, 5.0) is None


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n, 3600.0) for n in range(1, 10)]
    assert delays == sorted(delays) and delays[0] == 10.0 and delays[-1] == 300.0
    assert retry_delay(10_000, 3600.0) == 300.0
