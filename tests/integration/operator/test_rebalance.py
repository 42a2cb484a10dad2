"""Rebalancing against a real Consul, simulated nodes (``SimNode``): the move in flight is kept in
``status/rebalance``, so a new leader finishes it start-first instead of starting another; ``meshop
rebalance`` (the real CLI) is the request that lets a ``manual`` move run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeStatus, RebalanceStatus, loads_json
from meshop.operator.controller import Controller
from meshop.operator.rebalance import RebalanceSettings
from tests.integration.operator.sim import SimNode, events_of, placement_of, service_doc
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

FAST = RebalanceSettings("manual", stable_for=0.5, interval=0.0, max_in_flight=1, timeout=60.0)


def record(store: KVStore) -> RebalanceStatus:
    entry = store.get(keys.STATUS_REBALANCE)
    return RebalanceStatus.from_dict(loads_json(entry.value)) if entry else RebalanceStatus()


def node_ready(store: KVStore, node: str) -> bool:
    entry = store.get(keys.node_status(node))
    return entry is not None and NodeStatus.from_dict(loads_json(entry.value)).state == "Ready"


def on_two_then_a_third(
    store: KVStore, sim_nodes: Callable[..., SimNode], policy: str
) -> tuple[SimNode, SimNode, SimNode]:
    """web, 3 replicas stacked on n1/n2 (Ready), then n3 joins: one move (the node running 2 -> n3) is due."""
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    # both Ready first: placed while n2 is not yet, all three would stack on n1
    wait_until(lambda: all(node_ready(store, n.name) for n in (n1, n2)), 15, what="n1 and n2 Ready")
    store.put(
        keys.desired_service("web"), service_doc("web", replicas=3, placement={"spread": False, "rebalance": policy})
    )
    wait_until(
        lambda: sum(placement_of(store, "web").values()) == 3 and len(placement_of(store, "web")) == 2,
        10,
        what="web placed on n1/n2",
    )
    for node in (n1, n2):
        node.report("web")
    n3 = sim_nodes("n3")
    return n1, n2, n3


def test_a_new_leader_finishes_the_move_in_flight_start_first(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    first = controllers("c1", rebalance=FAST)
    wait_until(lambda: first.election.is_leader, 15, what="c1 leads")
    n1, n2, n3 = on_two_then_a_third(store, sim_nodes, "auto")
    wait_until(lambda: record(store).moves, 15, what="a move in flight")
    (move,) = record(store).moves
    assert move.target == n3.name and placement_of(store, "web")[move.source] == 2  # start-first: both copies
    first.stop()  # leadership ends mid-move, the new copy not Ready yet

    second = controllers("c2", rebalance=FAST)
    wait_until(lambda: second.election.is_leader and second.loop.passes > 0, 15, what="c2 leads")
    assert record(store).moves == (move,)  # resumed, not replaced by another move
    assert placement_of(store, "web")[move.source] == 2  # and the source still keeps its copy
    n3.report("web")  # the new copy Ready (no route: Ready is enough)
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1, n2.name: 1, n3.name: 1}, 15, what="1/1/1")
    wait_until(lambda: record(store).moves == (), 10, what="the move done")
    done = [e for e in events_of(store, "Rebalanced") if e.object == "service/web"]
    assert len(done) == 1 and f"{move.source} -> {n3.name}" in done[0].message


def test_manual_runs_only_after_meshop_rebalance(
    consul_server: ConsulServer,
    store: KVStore,
    prefix: str,
    role_config: Callable[..., ConsulConfig],
    sim_nodes: Callable[..., SimNode],
    controllers: Callable[..., Controller],
) -> None:
    ctl = controllers("c1", rebalance=FAST)
    wait_until(lambda: ctl.election.is_leader, 15, what="c1 leads")
    n1, n2, n3 = on_two_then_a_third(store, sim_nodes, "manual")
    wait_until(lambda: record(store).pending, 15, what="the move pending")
    token = role_config("operator").token or ""  # what a person running the CLI holds
    env = {"CONSUL_HTTP_ADDR": consul_server.addr, "CONSUL_HTTP_TOKEN": token, "MESHOP_PREFIX": prefix}
    env["PATH"] = "/usr/bin:/bin"
    dry = subprocess.run(
        [sys.executable, "-m", "meshop", "rebalance", "--dry-run"], capture_output=True, text=True, env=env
    )
    assert dry.returncode == 1, dry.stderr
    assert "service/web: " in dry.stdout and f"-> {n1.name}=1, {n2.name}=1, {n3.name}=1" in dry.stdout
    assert n3.name not in placement_of(store, "web") and record(store).moves == ()

    asked = subprocess.run([sys.executable, "-m", "meshop", "rebalance"], capture_output=True, text=True, env=env)
    assert asked.returncode == 0 and "requested" in asked.stdout, asked.stderr
    wait_until(lambda: n3.name in placement_of(store, "web"), 15, what="the move started")
    n3.report("web")
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1, n2.name: 1, n3.name: 1}, 15, what="1/1/1")
    request = store.get(keys.DESIRED_REBALANCE)
    assert request is not None
    wait_until(lambda: record(store).handled == request.modify_index, 10, what="the request handled")
