"""Stateful volumes against a real Consul and Docker engine: one writer, whatever the agents are told.

Two agents (two node names on the shared engine) are both assigned one stateful service — as if
placement raced — and a sampler lists their containers every 50 ms: never two running copies. The
holder's lock goes to the other node only once it lets go. With Consul gone, the holder kills its copy
within GIVE_UP + KILL_BUDGET of its last renewal, and starts it again once Consul is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.agent.stateful import timing
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.agent.helpers import AgentFactory, assign, wait_for
from tests.integration.agent.stateful import (
    LINES,
    STATEFUL,
    Sampler,
    backed_up,
    observed_reason,
    put_password,
    running_on,
    snapshot_of,
    sync_acl,
    volume_folder,
)
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def test_two_nodes_assigned_one_stateful_service_never_run_two_copies(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    start_agent: AgentFactory,
    start_other_agent: AgentFactory,
    node: str,
    other_node: str,
    prefix: str,
) -> None:
    store = KVStore(consul_config)
    start_agent(fence=True)
    start_other_agent(fence=True)
    with Sampler(docker_client, "db", [node, other_node]) as sampler:
        assign(store, node, "db", STATEFUL)
        sync_acl(consul_server, prefix)
        wait_until(lambda: running_on(docker_client, node, "db"), 30, what="the first node's copy")
        # pinned there: when it gets the lock it may start on an empty volume (no backup to restore)
        assign(store, other_node, "db", {**STATEFUL, "placement": {"node": other_node}})
        sync_acl(consul_server, prefix)
        # the second node is told to run it too: it waits for the lock, and says why
        wait_until(lambda: observed_reason(store, other_node, "db") == "VolumeLocked", 20, what="VolumeLocked")
        assert running_on(docker_client, other_node, "db") == []
        record = store.get(keys.volume_lock("db", "data"))
        assert record is not None and record.session and f'"node": "{node}"' in record.text
        # the first node lets go (placement moved it): its copy goes, then its lock (released, or,
        # when `acl sync` already took its rights away, freed by ending its session: lock-delay),
        # and the second node takes it and starts
        store.delete(keys.assignment(node, "db"))
        moved = time.monotonic()
        wait_until(lambda: running_on(docker_client, other_node, "db"), 60, what="the copy on the second node")
        assert time.monotonic() - moved < timing.LOCK_DELAY + 4 * timing.RENEW_EVERY + 10
        wait_until(lambda: other_node in sampler.seen_on, 10, what="the sampler to see it")
    assert sampler.samples > 20
    assert sampler.most == 1, "two copies ran at once"
    assert sampler.seen_on == {node, other_node}


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulServer]:
    server = ConsulServer(tmp_path / "consul", persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_holder_cut_off_from_consul_kills_its_copy_in_time_and_restarts_it_after(
    own_consul: ConsulServer, start_agent: AgentFactory, docker_client: Any, node: str
) -> None:
    config = ConsulConfig.from_env({}, addr=own_consul.addr, prefix="locks", timeout=2.0)
    store = KVStore(config)
    agent = start_agent(config=config, resync=1.0, fence=True)
    assign(store, node, "db", STATEFUL)
    wait_until(lambda: running_on(docker_client, node, "db"), 30, what="the stateful copy")
    keeper = agent.daemon.volume_locks
    assert keeper is not None and keeper.may_run("db")
    own_consul.stop()
    stopped = time.monotonic()
    wait_until(lambda: not running_on(docker_client, node, "db"), 30, what="the copy killed")
    # killed no later than GIVE_UP after the last successful renewal (at most RENEW_EVERY before the
    # stop) plus a watchdog tick and the kill: well inside LOCK_DELAY
    assert time.monotonic() - stopped < timing.GIVE_UP + timing.WATCH_TICK + timing.KILL_BUDGET
    # nothing starts it again while Consul is away (restart=no for Docker; the planner is fenced)
    with pytest.raises(TimeoutError):
        wait_until(lambda: running_on(docker_client, node, "db"), 3 * timing.RENEW_EVERY, what="a restart")
    own_consul.start()
    # its old session expired (or is in lock-delay): it takes the lock again and starts a new copy
    wait_until(
        lambda: running_on(docker_client, node, "db"),
        2 * timing.TTL + timing.LOCK_DELAY + 30,
        what="the copy back after Consul returned",
    )


def test_a_move_restores_the_latest_backup_before_the_first_start_and_the_old_copy_is_kept(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    start_agent: AgentFactory,
    start_other_agent: AgentFactory,
    node: str,
    other_node: str,
    tmp_path: Path,
    prefix: str,
) -> None:
    """Node A backs its volume up, then is lost (its agent stops: its copy dies, the lock is let go);
    placement moves the service to B with failover restore-latest: B restores the latest snapshot into a
    fresh volume before it starts, reports the loss window, and A, back, keeps its old copy aside."""
    store = KVStore(consul_config)
    put_password(store, prefix, "db")
    writer = backed_up(tmp_path / "repo", failover="restore-latest")
    first = start_agent(fence=True)
    assign(store, node, "db", writer)
    sync_acl(consul_server, prefix)
    wait_until(lambda: snapshot_of(store, node, "db"), 60, what="a first backup on node A")
    old = volume_folder(docker_client, f"meshop-{node}-db-data")
    first.stop()  # the node is lost: its agent's end kills the copy and lets the lock go
    assert running_on(docker_client, node, "db") == []
    (old / "after-backup").write_text("written after the snapshot: lost by the move\n")
    store.delete(keys.assignment(node, "db"))
    start_other_agent(fence=True)
    assign(store, other_node, "db", writer)
    sync_acl(consul_server, prefix)
    wait_until(lambda: running_on(docker_client, other_node, "db"), 60, what="the copy on node B")
    new = volume_folder(docker_client, f"meshop-{other_node}-db-data")
    assert (new / "lines").read_text() == (old / "lines").read_text() == LINES
    assert not (new / "after-backup").exists()  # the loss window: only what the snapshot holds
    wait_until(
        lambda: any(
            "Restored" in e.text and "data-loss window" in e.text
            for e in store.list(keys.events_of(keys.agent_events(other_node))).entries
        ),
        10,
        what="the Restored event with its loss window",
    )
    seen = wait_for(lambda: observed_reason(store, other_node, "db") == "Restored", 10, what="status")
    assert seen
    # node A returns: its copy never starts again; its volume is kept and recorded
    start_agent(fence=True)
    kept = wait_until(lambda: store.get(keys.kept_volume(node, f"meshop-{node}-db-data")), 30, what="the kept record")
    assert kept is not None and '"service": "db"' in kept.text
    assert running_on(docker_client, node, "db") == []
    assert (old / "after-backup").exists()  # never deleted


def test_a_crashed_agent_adopts_its_session_and_its_copy_keeps_running(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    node: str,
    tmp_path: Path,
    prefix: str,
    request: pytest.FixtureRequest,
) -> None:
    """SIGKILL of the agent process: the next one adopts the saved session (renewed within its TTL), so
    the copy is neither killed nor restarted — instead of waiting out the TTL and the lock-delay. The
    fence leaves it alone meanwhile: the lease runs until GIVE_UP after the last renewal, and the next
    agent renews it (systemd restarts an agent within 2 s)."""
    import signal

    from tests.integration.agent.helpers import agent_process, fence_process

    store = KVStore(consul_config)
    assign(store, node, "db", STATEFUL)
    sync_acl(consul_server, prefix)
    leases = tmp_path / "fence"
    fence = fence_process(node, leases, tmp_path / "fence.log")
    request.addfinalizer(fence.stop)
    lease = ("--lease-dir", str(leases))
    first = agent_process(node, consul_server.addr, prefix, tmp_path, *lease, log_name="agent-1.log").start()
    try:
        copy = wait_until(lambda: running_on(docker_client, node, "db"), 30, what="the stateful copy")
        assert isinstance(copy, list)
        started = copy[0].attrs["State"]["StartedAt"]
        first.signal(signal.SIGKILL)
        assert first.popen is not None
        first.popen.wait(5)
    finally:
        first.stop()
    second = agent_process(node, consul_server.addr, prefix, tmp_path, *lease, log_name="agent-2.log").start()
    try:
        wait_until(
            lambda: "adopted the volume lock session of db" in second.log_path.read_text(), 30, what="the adoption"
        )
        # a few renewals and watchdog looks later, it is the same container, never stopped
        record = store.get(keys.volume_lock("db", "data"))
        assert record is not None
        stamped = record.text
        wait_until(lambda: store.get(keys.volume_lock("db", "data")).text != stamped, 10, what="a renewal")  # type: ignore[union-attr]
        again = running_on(docker_client, node, "db")
        assert [c.id for c in again] == [copy[0].id]
        again[0].reload()
        assert again[0].attrs["State"]["StartedAt"] == started
    finally:
        second.stop()
