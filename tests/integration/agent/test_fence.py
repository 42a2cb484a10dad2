"""The fence (``meshop fence run``) with a real agent, a real Docker engine and a real Consul.

* the agent process SIGKILLed and not restarted: the fence kills its stateful copy once the lease runs
  out, within ``GIVE_UP + FENCE_TICK + KILL_BUDGET`` of the last renewal's start (read from the lease:
  one CLOCK_MONOTONIC for the agent, the fence and this test), and not before its deadline;
* the fence SIGKILLed while the agent runs: the copy is untouched, the agent keeps renewing, and it
  starts no new stateful copy (``NoFence``, an event) until a fence beats again;
* no fence at all: the agent does not start the copy and says why.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from meshop.agent.stateful import timing
from meshop.agent.stateful.leases import Lease, LeaseDir
from meshop.client.events import events_in
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.agent.helpers import AgentFactory, agent_process, assign, observed
from tests.integration.agent.stateful import STATEFUL, observed_reason, running_on, sync_acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import fence_process
from tests.support.procs import wait_until


def _events(store: KVStore, node: str, kind: str) -> list[str]:
    listing = store.list(keys.events_of(keys.agent_events(node)))
    return [e.event.message for e in events_in(listing.entries) if e.event.kind == kind]


def _lease(leases: LeaseDir, service: str) -> Lease:
    found = leases.leases().get(service)
    assert isinstance(found, Lease), found
    return found


def _finished_mono(container: Any) -> float:
    """Docker's FinishedAt (wall time, nanoseconds) on this host's monotonic clock."""
    container.reload()
    text = container.attrs["State"]["FinishedAt"]
    stamp = datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    return time.monotonic() - (time.time() - stamp)


class RunningWatch:
    """The monotonic time of each sample that saw ``alive()`` true, every 20 ms: the last one bounds
    from below when the copy died, and the first one after it from above."""

    def __init__(self, alive: Callable[[], bool]) -> None:
        self.alive = alive
        self.last_running = 0.0
        self.gone_seen: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            if self.alive():
                self.last_running = now
            elif self.gone_seen is None:
                self.gone_seen = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"], ids=["crashed", "hung"])
def test_a_dead_or_hung_agents_copy_is_killed_by_the_fence_within_the_bound(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    node: str,
    tmp_path: Path,
    prefix: str,
    how: str,
) -> None:
    store = KVStore(consul_config)
    assign(store, node, "db", STATEFUL)
    sync_acl(consul_server, prefix)
    leases = LeaseDir(tmp_path / "fence")
    fence = fence_process(node, leases.path, tmp_path / "fence.log")
    agent = agent_process(node, consul_server.addr, prefix, tmp_path, "--lease-dir", str(leases.path))
    try:
        agent.start()
        copy = wait_until(lambda: running_on(docker_client, node, "db"), 60, what="the stateful copy")[0]
        first = _lease(leases, "db").deadline
        wait_until(lambda: _lease(leases, "db").deadline > first, 10, what="a renewal moving the lease on")
        watch = RunningWatch(lambda: copy.id in {c.id for c in running_on(docker_client, node, "db")})
        if how == "SIGKILL":
            agent.kill()  # not restarted: nothing renews, the agent's watchdog is gone with it
        else:
            agent.signal(signal.SIGSTOP)  # hung: alive, but neither renews nor watches
            wait_until(lambda: _stopped(agent.pid), 10, what="the agent stopped")
        deadline = _lease(leases, "db").deadline  # final: no one writes it any more
        last_renewal = deadline - timing.GIVE_UP
        wait_until(lambda: watch.gone_seen is not None, timing.GIVE_UP + 30, what="the fence to kill the copy")
        watch.stop()
        assert fence.alive(), fence.log_tail()
        copy.reload()
        assert copy.attrs["State"]["ExitCode"] == 137  # SIGKILL
        died = _finished_mono(copy)
        bound = timing.GIVE_UP + timing.FENCE_TICK + timing.KILL_BUDGET
        assert watch.gone_seen is not None
        print(
            f"killed {died - last_renewal:.2f}s after the last renewal's start (seen gone after "
            f"{watch.gone_seen - last_renewal:.2f}s; deadline {timing.GIVE_UP:g}s, bound {bound:g}s)"
        )
        assert died - last_renewal <= bound, "the copy outlived the fence's bound"
        assert watch.gone_seen - last_renewal <= bound + 1.0  # the sampler's own lag on a loaded machine
        assert died >= deadline - 0.05, "killed before its lease ran out"  # Docker's stamp: ms resolution
        assert watch.last_running >= deadline - 1.0, "the copy was not running up to its deadline"
        assert "killed a copy of db (its lease expired)" in fence.log_tail(200)
    finally:
        agent.stop()
        fence.stop()


def test_a_dead_fence_leaves_the_copy_alone_and_the_agent_starts_nothing_new(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    start_agent: AgentFactory,
    node: str,
    prefix: str,
) -> None:
    store = KVStore(consul_config)
    agent = start_agent(fence=True, resync=1.0)
    leases = LeaseDir(start_agent.lease_dir)
    assign(store, node, "db", STATEFUL)
    sync_acl(consul_server, prefix)
    copy = wait_until(lambda: running_on(docker_client, node, "db"), 60, what="the stateful copy")[0]
    started = copy.attrs["State"]["StartedAt"]
    fence = start_agent.fences[0]
    fence.kill()
    killed = time.monotonic()
    # the agent renews on: its lease moves well past where an expired one would have mattered
    wait_until(
        lambda: _lease(leases, "db").deadline > killed + timing.GIVE_UP + timing.RENEW_EVERY,
        timing.GIVE_UP + 4 * timing.RENEW_EVERY + 10,
        what="renewals after the fence died",
    )
    again = running_on(docker_client, node, "db")
    assert [c.id for c in again] == [copy.id]
    again[0].reload()
    assert again[0].attrs["State"]["StartedAt"] == started, "the copy was restarted"
    # a new stateful service is not started without a fence, and the agent says why: once the dead fence's
    # last heartbeat is stale (until then the agent rightly counts it as watching)
    wait_until(
        lambda: time.monotonic() - (leases.heartbeat() or 0.0) > timing.FENCE_STALE,
        timing.FENCE_STALE + 5,
        what="the dead fence's heartbeat stale",
    )
    assign(store, node, "kv", STATEFUL)
    sync_acl(consul_server, prefix)
    wait_until(lambda: observed_reason(store, node, "kv") == "NoFence", 30, what="NoFence in the observed record")
    record = observed(store, node, "kv")
    assert record is not None and "no fence watches" in (record.error or "")
    wait_until(lambda: _events(store, node, "NoFence"), 20, what="the NoFence event")
    assert running_on(docker_client, node, "kv") == []
    assert agent.daemon.loop.last_error is None
    # a fence again: the waiting service starts
    start_agent.start_fence()
    wait_until(lambda: running_on(docker_client, node, "kv"), 30, what="kv once a fence watches")
    assert [c.id for c in running_on(docker_client, node, "db")] == [copy.id]


def test_without_a_fence_the_agent_does_not_start_the_copy_and_says_why(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    start_agent: AgentFactory,
    node: str,
    prefix: str,
) -> None:
    store = KVStore(consul_config)
    start_agent(resync=1.0)
    assign(store, node, "db", STATEFUL)
    sync_acl(consul_server, prefix)
    wait_until(lambda: observed_reason(store, node, "db") == "NoFence", 30, what="NoFence in the observed record")
    assert "meshop-fence.service: no heartbeat" in (observed(store, node, "db").error or "")  # type: ignore[union-attr]
    assert running_on(docker_client, node, "db") == []
    assert docker_client.containers.list(all=True, filters={"label": [f"meshop.node={node}"]}) == []
    messages = wait_until(lambda: _events(store, node, "NoFence"), 20, what="the NoFence event")
    assert any("not started" in m for m in messages)
    # the lease is written (the lock is held): a fence started now finds it and lets the copy run
    assert _lease(LeaseDir(start_agent.lease_dir), "db").deadline > time.monotonic()


def test_sigterm_to_the_fence_is_a_clean_stop(tmp_path: Path, node: str) -> None:
    fence = fence_process(node, tmp_path / "fence", tmp_path / "fence.log")
    fence.signal(signal.SIGTERM)
    assert fence.popen is not None
    assert fence.popen.wait(10) == 0, fence.log_tail()
