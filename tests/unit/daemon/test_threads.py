"""``DaemonThread``: named daemon threads with a stop event, stopped with a bound, stragglers reported."""

from __future__ import annotations

import logging
import threading

import pytest

from meshop.daemon.threads import DaemonThread


def test_stop_sets_the_event_runs_on_stop_once_and_joins() -> None:
    closed: list[str] = []
    ticks: list[int] = []
    holder: list[DaemonThread] = []

    def body() -> None:
        while not holder[0].stopping.wait(0.01):
            ticks.append(1)

    thread = DaemonThread("test-ticker", body, on_stop=lambda: closed.append("closed"))
    holder.append(thread)
    assert not thread.started
    thread.start()
    assert thread.started and thread.is_alive()
    assert thread._thread.daemon and thread._thread.name == "test-ticker"
    assert thread.stop(timeout=5)
    assert not thread.is_alive()
    thread.signal()  # idempotent: on_stop ran once
    assert closed == ["closed"]


def test_a_thread_that_does_not_stop_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    thread = DaemonThread("test-stuck", lambda: release.wait(10)).start()  # ignores its stop event
    try:
        with caplog.at_level(logging.WARNING, logger="meshop.daemon.threads"):
            assert not thread.stop(timeout=0.05)
        assert "thread test-stuck did not stop within 0.1 s" in caplog.text
    finally:
        release.set()
    assert thread.join(timeout=5)


def test_an_owner_event_is_the_stop_event_and_an_unstarted_thread_stops_at_once() -> None:
    event = threading.Event()
    thread = DaemonThread("test-unstarted", lambda: None, stopping=event)
    assert thread.stop(timeout=0)  # never started: nothing to join
    assert event.is_set()
