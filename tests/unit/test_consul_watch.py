"""The watch's retry with an in-memory fetch: it backs off by the shared policy while Consul fails and
resets on the first answer (the real blocking queries: tests/integration/test_consul_watch.py)."""

from __future__ import annotations

from meshop.consul.watch import Watch
from meshop.errors import ConsulUnavailable
from tests.support.procs import wait_until


def test_a_failing_watch_backs_off_then_resets_on_the_first_answer() -> None:
    outcomes: list[bool] = [False, False, False, True]  # three failures, then answers
    asked: list[int] = []

    def fetch(index: int, wait: str | None) -> tuple[int, str]:
        asked.append(index)
        if outcomes and not outcomes.pop(0):
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
        return 7, "value"

    watch = Watch("test", fetch, max_backoff=0.02, random=lambda: 0.5).start()
    try:
        assert watch.wait_ready(5)
        wait_until(lambda: watch._streak.failures == 0, 5, what="the streak reset by the answer")
        assert watch.errors == 3 and watch.connected and watch.latest == "value"
        assert asked[:4] == [0, 0, 0, 0]  # after a failure it re-reads without blocking
        assert watch._streak.policy.delay(3, lambda: 0.0) == 0.02  # 0.02 s is both base and cap here
    finally:
        watch.stop()
        assert watch.join(5)
