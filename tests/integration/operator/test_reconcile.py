"""The controller against a real Consul: documents in, assignments / status / routes / events out.

Nodes are simulated (``SimNode``): records, agent TTL checks and observed state are written directly, as
the agent would. The first test runs the real ``meshop controller run`` and writes with the real
``consul kv put``; the others run the controller in-process for speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.model import PERMISSIVE_POLICY, keys, load_documents, validate
from meshop.model.records import RouteRecord, Upstream, loads_json
from meshop.operator.controller import Controller
from tests.integration.operator.sim import (
    CliController,
    SimNode,
    condition,
    consul_kv_put,
    events_of,
    leader_id,
    placement_of,
    service_doc,
    status_of,
)
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def wait_leader(ctl: Controller) -> None:
    wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 15, what="the controller to lead")


def test_document_put_with_consul_cli_is_assigned_within_half_a_second(
    consul_server: ConsulServer,
    store: KVStore,
    prefix: str,
    tmp_path: Path,
    sim_nodes: Callable[..., SimNode],
    cli_controllers: Callable[..., CliController],
) -> None:
    n1 = sim_nodes("n1")
    ctl = cli_controllers("c1", "--grace-period", "2", "--lock-delay", "1", "--check-ttl", "1")
    wait_until(lambda: ctl.get("/readyz") == (200, "leader\n"), 20, what=f"leader /readyz\n{ctl.log()}")
    assert leader_id(store) == ctl.id

    consul_kv_put(
        consul_server,
        f"{prefix}/desired/services/web",
        service_doc("web", route={"host": "web.test", "port": "http"}),
        tmp_path,
    )
    written = time.monotonic()
    wait_until(lambda: store.get(keys.assignment(n1.name, "web")), 5, interval=0.005, what="the assignment")
    latency = time.monotonic() - written
    assert latency < 0.5, latency

    desired = store.get(keys.desired_service("web"))
    assignment = n1.assignment("web")
    assert assignment is not None and desired is not None
    assert (assignment.replicas, assignment.generation) == (1, desired.modify_index)
    assert assignment.spec["image"] == "meshop-test/busybox:1"
    wait_until(lambda: condition(store, "web", "Ready") == ("False", "Progressing"), 5, what="status Progressing")
    assert condition(store, "web", "Scheduled") == ("True", "Scheduled")
    assert status_of(store, "web").observed_generation == desired.modify_index  # type: ignore[union-attr]

    n1.report("web")  # the agent reports a healthy replica
    wait_until(lambda: condition(store, "web", "Ready") == ("True", "Ready"), 5, what="status Ready")
    route = RouteRecord.from_dict(loads_json(store.get(keys.route("web.test")).value))  # type: ignore[union-attr]
    assert route.upstreams == (Upstream(n1.name, "127.0.0.1", 30000, True),)
    assert [e.object for e in events_of(store, "Scheduled")] == ["service/web"]
    assert ctl.metric("meshop_leader") == 1.0
    wait_until(lambda: ctl.metric('meshop_service_ready{service="web"}') == 1.0, 5, what="the service gauge")
    assert ctl.metric('meshop_services{state="ready"}') == 1.0
    registered = Services(store.config, store.client).local()[f"meshop-metrics-controller.{ctl.id}"]
    assert (registered["Port"], registered["Meta"]["component"]) == (ctl.metrics_port, "controller")


def test_invalid_update_reports_every_error_and_leaves_the_running_version_alone(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1 = sim_nodes("n1")
    wait_leader(controllers())
    store.put(keys.desired_service("web"), service_doc("web", replicas=1))
    wait_until(lambda: n1.assignment("web"), 5, what="the assignment")
    n1.report("web")
    wait_until(lambda: condition(store, "web", "Ready") == ("True", "Ready"), 5, what="Ready")
    before = store.get(keys.assignment(n1.name, "web"))
    assert before is not None

    broken = service_doc("web", replicas=-2, ports=[{"name": "Bad_Name", "container": 70000}])
    store.put(keys.desired_service("web"), broken)
    bad_index = store.get(keys.desired_service("web")).modify_index  # type: ignore[union-attr]
    wait_until(lambda: condition(store, "web", "Valid") == ("False", "Invalid"), 5, what="Valid=False")

    expected = validate(load_documents(broken)[0], PERMISSIVE_POLICY)
    assert len(expected) >= 3
    status = status_of(store, "web")
    assert status is not None
    assert status.condition("Valid").message == (  # type: ignore[union-attr]
        "; ".join(str(v) for v in expected) + " (the last valid version keeps running)"
    )
    assert status.observed_generation == bad_index
    assert status.condition("Ready").status == "True"  # type: ignore[union-attr]
    invalid_events = events_of(store, "Invalid")
    assert [e.object for e in invalid_events] == ["service/web"]
    assert str(expected[0]) in invalid_events[0].message
    after = store.get(keys.assignment(n1.name, "web"))
    assert after == before  # same value, same ModifyIndex: untouched

    store.put(keys.desired_service("web"), service_doc("web", replicas=1, image="meshop-test/busybox:2"))
    wait_until(lambda: n1.assignment("web").spec["image"] == "meshop-test/busybox:2", 5, what="the fixed version")
    assert condition(store, "web", "Valid") == ("True", "Valid")


def test_agent_stopped_past_the_grace_period_moves_work_and_a_returning_node_gets_exactly_its_work(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    wait_leader(controllers(grace_period=2.0))
    store.put(keys.desired_service("web"), service_doc("web", replicas=1))
    # placed alone, web takes the first of two empty nodes; put together, spread would send it to n2
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1}, 5, what="web on n1")
    store.put(keys.desired_service("pinned"), service_doc("pinned", placement={"node": n1.name}))
    wait_until(lambda: placement_of(store, "pinned") == {n1.name: 1}, 5, what="pinned on n1")
    for node, service in ((n1, "web"), (n1, "pinned")):
        node.report(service)

    n1.stop_agent()
    stopped = time.monotonic()
    wait_until(lambda: placement_of(store, "web") == {n2.name: 1}, 15, what="web rescheduled to n2")
    assert time.monotonic() - stopped >= 2.0 + 1.0 - 0.2  # check TTL (1 s) + grace (2 s), not earlier
    n2.report("web")
    wait_until(lambda: condition(store, "web", "Ready") == ("True", "Ready"), 5, what="web Ready on n2")

    # the pinned service waits for its node, and says so
    assert placement_of(store, "pinned") == {n1.name: 1}
    wait_until(lambda: condition(store, "pinned", "Scheduled") == ("False", "NodeLost"), 5, what="pinned waits")
    message = status_of(store, "pinned").condition("Scheduled").message  # type: ignore[union-attr]
    assert f"waiting for pinned node {n1.name} (NotReady)" in message
    assert [e.object for e in events_of(store, "NodeLost")] == [f"node/{n1.name}"]
    rescheduled = events_of(store, "Rescheduled")
    assert [e.object for e in rescheduled] == ["service/web"]
    assert f"moved off {n1.name} (NodeLost)" in rescheduled[0].message

    n1.resume()
    wait_until(lambda: [e.object for e in events_of(store, "NodeReady")] == [f"node/{n1.name}"], 10, what="NodeReady")
    n1.report("pinned")
    wait_until(lambda: condition(store, "pinned", "Ready") == ("True", "Ready"), 5, what="pinned Ready again")
    assert placement_of(store, "web") == {n2.name: 1}  # exactly one copy, and it stays where it moved
    assert n1.assignment("web") is None


def test_drain_moves_work_start_first(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    wait_leader(controllers())
    store.put(keys.desired_service("web"), service_doc("web"))
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1}, 5, what="web on n1")
    n1.report("web")
    node_doc = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Node",
        "metadata": {"name": n1.name},
        "spec": {"drain": True},
    }
    store.put(keys.desired_node(n1.name), json.dumps(node_doc))

    wait_until(lambda: placement_of(store, "web") == {n1.name: 1, n2.name: 1}, 5, what="a replacement on n2")
    wait_until(lambda: "until replacements are Ready" in status_of(store, "web").condition("Scheduled").message, 5)
    assert placement_of(store, "web") == {n1.name: 1, n2.name: 1}  # the old copy waits for the new one
    n2.report("web")
    wait_until(lambda: placement_of(store, "web") == {n2.name: 1}, 5, what="the old copy to go")
    assert "draining" in events_of(store, "Rescheduled")[0].message


def test_deleting_the_document_removes_assignments_routes_and_status(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    wait_leader(controllers())
    store.put(keys.desired_service("web"), service_doc("web", replicas=2, route={"host": "web.test", "port": 80}))
    store.put(keys.desired_service("other"), service_doc("other"))
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1, n2.name: 1}, 5, what="web placed")
    wait_until(lambda: store.get(keys.route("web.test")) and status_of(store, "web"), 5, what="route and status")

    store.delete(keys.desired_service("web"))
    wait_until(lambda: placement_of(store, "web") == {}, 5, what="assignments removed")
    wait_until(lambda: store.get(keys.route("web.test")) is None and status_of(store, "web") is None, 5)
    assert placement_of(store, "other") != {} and status_of(store, "other") is not None


def test_one_broken_document_does_not_block_the_others(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1 = sim_nodes("n1", memory=1024**3)
    wait_leader(controllers())
    store.put(keys.desired_service("bad"), "spec: [unclosed")
    store.put(keys.desired_service("huge"), service_doc("huge", resources={"memory": "64Gi"}))
    store.put(keys.desired_service("good"), service_doc("good"))
    wait_until(lambda: n1.assignment("good"), 5, what="good placed")
    wait_until(lambda: condition(store, "huge", "Scheduled") == ("False", "InsufficientCapacity"), 5)
    assert condition(store, "bad", "Valid") == ("False", "Invalid")
    assert placement_of(store, "bad") == {} and placement_of(store, "huge") == {}


def test_nothing_is_rewritten_while_nothing_changes(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    ctl = controllers(resync=0.3)  # resync passes re-read the controller's own keys too
    wait_leader(ctl)
    for i in range(5):
        store.put(
            keys.desired_service(f"s{i}"), service_doc(f"s{i}", replicas=2, route={"host": f"s{i}.test", "port": 80})
        )
    wait_until(lambda: len(store.list(keys.STATUS_SERVICES).entries) == 5, 5, what="statuses")
    for i in range(5):
        n1.report(f"s{i}")
        n2.report(f"s{i}")
    wait_until(lambda: all(condition(store, f"s{i}", "Ready") == ("True", "Ready") for i in range(5)), 5)
    owned = (keys.ASSIGNMENTS, keys.STATUS_SERVICES, keys.ROUTES, keys.EVENTS)
    snapshot = {e.key: e.modify_index for p in owned for e in store.list(p).entries}
    passes = ctl.loop.passes
    wait_until(lambda: ctl.loop.passes >= passes + 5, 10, what="five more passes")
    assert {e.key: e.modify_index for p in owned for e in store.list(p).entries} == snapshot
    assert ctl.last.operations == 0


def test_readiness_follows_consul_and_leadership_returns_after_a_consul_restart(tmp_path: Path) -> None:
    from meshop.consul.config import ConsulConfig
    from meshop.operator.controller import ControllerOptions

    server = ConsulServer(tmp_path / "consul").start()  # private: this test stops it
    try:
        config = ConsulConfig.from_env({}, addr=server.addr, prefix="r", timeout=2)
        ctl = Controller(
            config,
            ControllerOptions(
                "restart", lock_delay=0, check_ttl=1.0, resync=1.0, local_cluster=True, trust_node_records=True
            ),
        ).start()
        try:
            wait_until(lambda: ctl.ready() == (True, "leader"), 15, what="ready as leader")
            server.kill()
            wait_until(lambda: not ctl.ready()[0], 20, what="readiness to drop")
            assert "not connected to Consul" in ctl.ready()[1] or "failed" in ctl.ready()[1]
            server.start()  # -dev: a fresh Consul, without the registration, session or lock
            wait_until(lambda: ctl.ready() == (True, "leader"), 30, what="leader again after the restart")
            store = KVStore(config)
            store.put(keys.desired_service("web"), service_doc("web"))
            wait_until(lambda: status_of(store, "web") is not None, 10, what="the controller to act again")
        finally:
            ctl.stop()
    finally:
        server.stop()
