"""Leader election with real ``meshop controller run`` processes, stopped and signalled by PID."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore, TxnOp
from meshop.model import keys
from meshop.model.records import Assignment, loads_json
from meshop.operator.controller import Controller
from meshop.operator.election import controller_service_id
from meshop.operator.plan import Changes, ServiceWrite
from meshop.operator.writer import LeadershipLost, Owned, Writer
from tests.integration.operator.sim import CliController, SimNode, events_of, leader_id, service_doc
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import free_port, wait_until

LOCK_DELAY = 2


def owned_snapshot(store: KVStore) -> dict[str, tuple[int, bytes]]:
    """Every key the controller writes, with its ModifyIndex and value."""
    found = {}
    for prefix in (keys.ASSIGNMENTS, keys.STATUS_SERVICES, keys.ROUTES, keys.EVENTS, keys.LEADER):
        for entry in store.list(prefix).entries:
            found[entry.key] = (entry.modify_index, entry.value)
    return found


def test_one_leader_and_the_standby_takes_over_within_lock_delay_after_sigkill(
    store: KVStore, sim_nodes: Callable[..., SimNode], cli_controllers: Callable[..., CliController]
) -> None:
    n1 = sim_nodes("n1")
    flags = ("--lock-delay", str(LOCK_DELAY), "--check-ttl", "1", "--grace-period", "5")
    a = cli_controllers("a", *flags)
    wait_until(lambda: leader_id(store) == a.id, 20, what=f"a to lead\n{a.log()}")
    b = cli_controllers("b", *flags)
    wait_until(lambda: b.get("/readyz") == (200, "standby\n"), 20, what=f"b ready as standby\n{b.log()}")
    assert a.get("/readyz") == (200, "leader\n")
    assert (a.metric("meshop_leader"), b.metric("meshop_leader")) == (1.0, 0.0)
    assert leader_id(store) == a.id

    store.put(keys.desired_service("web"), service_doc("web"))
    wait_until(lambda: n1.assignment("web"), 5, what="the leader to assign web")

    a.process.kill()  # SIGKILL: no release, no deregistration
    killed = time.monotonic()
    wait_until(lambda: leader_id(store) == b.id, LOCK_DELAY + 5, interval=0.05, what=f"b to lead\n{b.log()}")
    took_over = time.monotonic() - killed
    assert took_over < LOCK_DELAY + 5, took_over
    wait_until(lambda: b.metric("meshop_leader") == 1.0, 5, what="b's leader gauge")

    store.put(keys.desired_service("api"), service_doc("api"))
    wait_until(lambda: n1.assignment("api"), 5, what="the new leader to assign api")
    elected = [e.object for e in events_of(store, "LeaderElected")]
    assert elected == [f"controller/{a.id}", f"controller/{b.id}"]


def test_sigterm_releases_the_lock_at_once_and_deregisters(
    store: KVStore, cli_controllers: Callable[..., CliController]
) -> None:
    flags = ("--lock-delay", "10", "--check-ttl", "1")
    a = cli_controllers("a", *flags)
    wait_until(lambda: leader_id(store) == a.id, 20, what="a to lead")
    b = cli_controllers("b", *flags)
    wait_until(lambda: b.get("/readyz")[0] == 200, 20, what="b ready")
    services = Services(store.config, store.client)
    assert controller_service_id(store.prefix, a.id) in services.local()

    a.process.stop()  # SIGTERM
    stopped = time.monotonic()
    assert a.process.popen is not None and a.process.popen.returncode == 0
    wait_until(lambda: leader_id(store) == b.id, 5, what="b to lead")
    assert time.monotonic() - stopped < 3  # released, so lock-delay (10 s) did not apply
    assert controller_service_id(store.prefix, a.id) not in services.local()
    assert "released leadership" in a.log()


def test_a_frozen_leader_that_lost_the_lock_writes_nothing_when_it_wakes(
    store: KVStore, sim_nodes: Callable[..., SimNode], cli_controllers: Callable[..., CliController]
) -> None:
    n1 = sim_nodes("n1")
    a = cli_controllers("a", "--lock-delay", "1", "--check-ttl", "1")
    wait_until(lambda: leader_id(store) == a.id, 20, what="a to lead")
    b = cli_controllers("b", "--lock-delay", "1", "--check-ttl", "20")  # b survives being frozen a while
    wait_until(lambda: b.get("/readyz")[0] == 200, 20, what="b ready")
    store.put(keys.desired_service("web"), service_doc("web"))
    wait_until(lambda: n1.assignment("web"), 5, what="a to assign web")

    a.process.signal(signal.SIGSTOP)  # past its check TTL: its session dies, b takes over
    wait_until(lambda: leader_id(store) == b.id, 15, interval=0.05, what="b to lead")
    wait_until(lambda: len(events_of(store, "LeaderElected")) == 2, 5, what="b's first pass as leader")

    b.process.signal(signal.SIGSTOP)  # now nobody may write: anything that changes comes from a
    try:
        store.put(keys.desired_service("web"), service_doc("web", image="meshop-test/busybox:2"))
        before = owned_snapshot(store)
        a.process.signal(signal.SIGCONT)  # a wakes up, sees the change, and must not act on it
        wait_until(lambda: "lost leadership" in a.log(), 10, what=f"a to notice\n{a.log()}")
        wait_until(lambda: a.metric("meshop_leader") == 0.0, 5, what="a's gauge")
        assert a.metric("meshop_service_ready") is None  # an ex-leader reports no services
        time.sleep(1.0)  # give a stray write every chance to land
        assert owned_snapshot(store) == before
    finally:
        b.process.signal(signal.SIGCONT)
    wait_until(lambda: n1.assignment("web").spec["image"] == "meshop-test/busybox:2", 10, what="b to write")
    assert leader_id(store) == b.id


def test_a_guarded_write_from_a_lost_session_is_refused_as_a_whole(store: KVStore) -> None:
    sessions = Sessions(store)
    session = sessions.create("old-leader", lock_delay=0)
    lock = sessions.acquire(keys.LEADER, session)
    assert lock is not None
    sessions.destroy(session)  # the session dies (as when the leader's check goes critical)

    write = ServiceWrite(
        "web",
        put=(Assignment("web", "n2", 1, 5, "h", {"image": "x"}),),
        delete=("n1",),
    )
    store.put(keys.assignment("n1", "web"), "old")
    from meshop.consul.events import EventLog

    try:
        Writer(store, EventLog(store, "controller")).write(Changes(services=(write,)), lock.guard(), Owned())
    except LeadershipLost:
        pass
    else:
        raise AssertionError("the guarded write went through")
    assert store.get(keys.assignment("n2", "web")) is None
    assert store.get(keys.assignment("n1", "web")).value == b"old"  # type: ignore[union-attr]
    store.transact([TxnOp.set("probe", "x")])  # the store itself is fine


def test_an_in_process_leader_steps_down_when_its_session_is_destroyed(
    store: KVStore, controllers: Callable[..., Controller]
) -> None:
    ctl = controllers(lock_delay=0)
    wait_until(lambda: ctl.election.is_leader, 10, what="leadership")
    lock = ctl.election.lock
    assert lock is not None
    Sessions(store).destroy(lock.session)
    wait_until(lambda: ctl.election.lock is not None and ctl.election.lock != lock, 10, what="a new session leads")
    entry = store.get(keys.LEADER)
    assert entry is not None and entry.session == ctl.election.lock.session  # type: ignore[union-attr]
    assert loads_json(entry.value)["id"] == ctl.options.controller_id


def test_two_installations_sharing_a_consul_agent_each_keep_a_leader(
    consul_server: ConsulServer, store: KVStore, tmp_path: Path
) -> None:
    """Staging and production under two KV prefixes, each controller with the same id (the default is the
    host name): each must lead its own prefix and stay leader. Before, both registered the same service id,
    replaced each other's check and destroyed each other's session, so leadership flapped or was lost."""
    other_prefix = f"{store.prefix}-b"
    other = KVStore(ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=other_prefix))
    procs = []
    try:
        for prefix in (store.prefix, other_prefix):
            metrics = f"127.0.0.1:{free_port()}"
            args = [
                "controller",
                "run",
                "--id",
                "same-host",
                "--check-ttl",
                "1",
                "--lock-delay",
                "1",
                "--metrics-addr",
                metrics,
            ]
            procs.append(meshop_process(consul_server.addr, prefix, args, tmp_path / f"{prefix}.log").start())
        wait_until(lambda: leader_id(store) == "same-host" and leader_id(other) == "same-host", 20, what="both lead")
        sessions = {store.get(keys.LEADER).session, other.get(keys.LEADER).session}  # type: ignore[union-attr]
        deadline = time.monotonic() + 4  # several check TTLs and heartbeats: nobody loses anything
        while time.monotonic() < deadline:
            assert {store.get(keys.LEADER).session, other.get(keys.LEADER).session} == sessions  # type: ignore[union-attr]
            time.sleep(0.2)
        local = Services(store.config, store.client).local()
        assert {
            controller_service_id(store.prefix, "same-host"),
            controller_service_id(other_prefix, "same-host"),
        } <= set(local)
    finally:
        for proc in procs:
            proc.stop()
        acl.close_everywhere(other_prefix)
