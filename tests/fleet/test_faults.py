"""Faults on a real fleet (tests/support/fleet.py): what must hold after each one.

Each test runs a service of its own through the gateway, injects one fault, and asserts the fleet
properties users pick meshop for: no container lost (the wanted replicas run again, Ready), no duplicate
after the fault is over, and where the fault leaves a healthy replica serving, no failed request. The
request loop never retries: every request without a 200 answer counts. How long things take (traffic
off a failed node, replacements running, a returning node clean) is measured by benchmarks/fleet.py,
not asserted here.
"""

from __future__ import annotations

import signal
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.fleet import Fleet, RequestLoop, service_doc, wait_for

pytestmark = pytest.mark.slow

REPLACE = 90.0  # generous bounds for conditions on a loaded 2-core machine; timings are benchmarked


def host_of(service: str) -> str:
    return f"{service}.fleet.test"


def start(fleet: Fleet, service: str, replicas: int, *, spread: bool = True, version: str = "1") -> None:
    fleet.apply(service_doc(service, replicas, host_of(service), spread=spread, version=version))
    wait_for(lambda: fleet.service_ready(service, replicas), REPLACE, f"{service} Ready", interval=0.25)
    wait_for(lambda: routed(fleet, service), 30, f"{service} answering through the gateway", interval=0.1)


def routed(fleet: Fleet, service: str) -> bool:
    from tests.support.fleet import GATEWAY_PORT, http_get

    return http_get(fleet.gateway.addr, GATEWAY_PORT, host_of(service), "/", 2)[0] == 200


def duplicates(fleet: Fleet, service: str, replicas: int) -> int:
    """Containers beyond the wanted count, plus copies of one replica on one node."""
    counts = fleet.replicas(service)
    return max(0, sum(counts.values()) - replicas) + sum(n - 1 for n in counts.values() if n > 1)


def placed_on(fleet: Fleet, service: str) -> list[str]:
    return sorted(c["node"] for c in fleet.containers(service))


def victim_of(fleet: Fleet, service: str) -> str:
    """A node running a replica of ``service`` that is not n1 (n1 hosts the standby controller)."""
    nodes = [n for n in placed_on(fleet, service) if n != "n1"]
    assert nodes, f"{service} runs only on n1: {placed_on(fleet, service)}"
    return nodes[0]


@contextmanager
def traffic(fleet: Fleet, service: str) -> Iterator[RequestLoop]:
    loop = RequestLoop(fleet.gateway.addr, host_of(service)).start()
    try:
        yield loop
    finally:
        loop.stop()


def test_fleet_is_up(fleet: Fleet, service: str) -> None:
    """Three nodes with engines of their own, Ready, shown by `meshop status` from the host; a service's
    replicas on two nodes answer through the gateway."""
    status = fleet.cli("status").stdout
    for name in fleet.node_names:
        assert fleet.node(name).addr in status and fleet.node_state(name) == "Ready"
    roots = {name: fleet.engine_info(name)["DockerRootDir"] for name in fleet.node_names}
    assert roots == {name: str(fleet.node(name).dir / "docker") for name in fleet.node_names}
    assert fleet.members_alive() == {"gw", *fleet.node_names}  # each node's own Consul client agent
    start(fleet, service, 2)
    assert len(set(placed_on(fleet, service))) == 2
    assert {c["Labels"]["meshop.node"] for c in fleet.containers(service)} == set(placed_on(fleet, service))


def test_fleet_runs_with_default_deny_acls_and_a_token_per_role(fleet: Fleet) -> None:
    """As users run it (issue 24): Consul refuses a request without a token, every meshop daemon holds its
    own role's token from a 0600 file (only `acl sync` the management token), no token shows in a log, and
    every Consul agent syncs its own node with its node-identity token (nothing blocked by the ACLs)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{fleet.consul_addr}/v1/kv/{fleet.prefix}/status/nodes/n1", timeout=3)
    assert refused.value.code == 403
    expected = {("gw", "controller"): "controller", ("gw", "gateway"): "gateway"}
    expected |= {(m.name, "acl-sync"): "management" for m in fleet.server_members}  # one per server host
    expected |= {(m.name, "controller"): "controller" for m in fleet.standby_hosts}
    expected |= {(n, "agent"): f"agent-{n}" for n in fleet.node_names}
    management = fleet.management_file.read_text()
    assert stat.S_IMODE(fleet.tokens_dir.stat().st_mode) == 0o700
    for (host, proc), token in expected.items():
        pid = fleet.member(host).pid(proc)
        assert pid and fleet.member(host).ours(pid), f"{proc} on {host}"
        env = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)
        path = Path(env["CONSUL_HTTP_TOKEN_FILE"])
        assert (path, "CONSUL_HTTP_TOKEN" in env) == (fleet.tokens_dir / f"{token}.token", False), (host, proc)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (path.read_text() == management) == (token == "management"), (host, proc)
    for name in fleet.node_names:  # the fence needs no Consul: no token at all (agents/meshop-fence.service)
        pid = fleet.node(name).pid("fence")
        assert pid and fleet.node(name).ours(pid), f"fence on {name}"
        assert b"CONSUL_HTTP_TOKEN" not in Path(f"/proc/{pid}/environ").read_bytes(), f"fence on {name}"
    secrets = [path.read_text().strip() for path in fleet.tokens_dir.glob("*.token")]
    for log in fleet.root.glob("*/*.log"):
        text = log.read_text(errors="replace")
        assert not [s for s in secrets if s in text], f"a token in {log}"
    for member in [fleet.gateway, *(fleet.node(n) for n in fleet.node_names)]:
        node = fleet.consul_get(f"/v1/catalog/node/{member.name}")["Node"]
        assert node["TaggedAddresses"].get("lan") == member.addr  # written by the agent's own anti-entropy
        if member.name != "gw":  # gw's starts before the ACLs are bootstrapped (as with `meshop init`)
            assert "blocked by ACLs" not in (member.dir / "consul.log").read_text(), member.name


def test_rolling_update_under_load_fails_no_request(fleet: Fleet, service: str) -> None:
    start(fleet, service, 3, spread=False)
    assert placed_on(fleet, service) == ["n1", "n2", "n3"]  # fewest replicas first: one per node
    before = {c["Id"] for c in fleet.containers(service)}
    with traffic(fleet, service) as loop:
        fleet.apply(service_doc(service, 3, host_of(service), spread=False, version="2"))

        def updated() -> bool:
            now = fleet.containers(service)
            return len(now) == 3 and not {c["Id"] for c in now} & before and fleet.service_ready(service, 3)

        wait_for(updated, REPLACE, "every replica replaced by version 2", interval=0.25)
        served = loop.total
        wait_for(lambda: loop.total > served + 20, 30, "more requests after the update")
    assert loop.ok > 50
    assert loop.failures == [], loop.report()
    assert duplicates(fleet, service, 3) == 0


def test_consul_server_restart_costs_nothing(fleet: Fleet, service: str) -> None:
    """Consul's server goes away and comes back: every container stays as it is, traffic keeps flowing."""
    start(fleet, service, 2)
    before = sorted(c["Id"] for c in fleet.containers(service))
    with traffic(fleet, service) as loop:
        fleet.restart_consul_server()
        wait_for(fleet.nodes_ready, REPLACE, "every node Ready again", interval=0.25)
        wait_for(lambda: fleet.service_ready(service, 2), REPLACE, f"{service} Ready again", interval=0.25)
        served = loop.total
        wait_for(lambda: loop.total > served + 20, 30, "more requests after the restart")
    assert sorted(c["Id"] for c in fleet.containers(service)) == before
    # was an imperative xfail (3 of 6 restarts lost ~0.1 s of requests: the gateway loaded a config from a
    # replaying server's empty routes/); closed by consistent reads and the gateway's emptying hold
    assert loop.failures == [], loop.report()


def test_dockerd_restart_on_a_node(fleet: Fleet, service: str) -> None:
    """A node's engine restarts (its containers stop with it): the replica comes back on that node, no
    duplicate, and the other replica keeps the service answering."""
    start(fleet, service, 2)
    victim = victim_of(fleet, service)
    layout = placed_on(fleet, service)
    with traffic(fleet, service) as loop:
        stopping = time.monotonic()
        fleet.restart_dockerd(victim)
        back = time.monotonic()
        wait_for(lambda: fleet.service_ready(service, 2), REPLACE, f"{service} Ready again", interval=0.25)
        served = loop.total
        wait_for(lambda: loop.total > served + 20, 30, "more requests after the restart")
    assert placed_on(fleet, service) == layout  # back where it was: no rescheduling within the grace period
    assert duplicates(fleet, service, 2) == 0
    # The engine stops the container behind meshop's back (no drain first): the one request in flight to it
    # at that moment may fail (seen once: a 502 from the node Caddy). Nothing else may.
    assert len(loop.failures) <= 1, loop.report()
    assert all(stopping - 1 <= began <= back for began, _, _ in loop.failures), loop.failures


def test_controller_leader_loss(fleet: Fleet, service: str) -> None:
    """The leading controller dies: the standby on n1 takes over without touching a running replica, and
    acts on the next change."""
    start(fleet, service, 2)
    before = sorted(c["Id"] for c in fleet.containers(service))
    standby = f"{fleet.node('n1').addr}:9465"
    fleet.make_leader("gw")  # an earlier fault may have moved it (a slow Consul restart can outlast the check TTL)
    try:
        assert fleet.signal(fleet.gateway, "controller", signal.SIGKILL)
        wait_for(lambda: fleet.leader() == "ctl-n1", 60, "the standby to lead", interval=0.1)
        wait_for(
            lambda: fleet.metric(standby, "meshop_service_ready", service=service) == 1.0,
            60,
            f"the new leader to judge {service} Ready",
        )
        assert sorted(c["Id"] for c in fleet.containers(service)) == before
        fleet.apply(service_doc(service, 3, host_of(service)))
        wait_for(lambda: fleet.service_ready(service, 3), REPLACE, f"{service} scaled to 3 by the new leader")
        assert duplicates(fleet, service, 3) == 0
    finally:
        fleet.stop(fleet.gateway, "controller")
        fleet.start_controller(fleet.gateway)  # back as the standby


def test_partition_and_heal(fleet: Fleet, service: str) -> None:
    """A node loses its link: its replica is replaced elsewhere after the grace period; after the heal the
    node removes its stale copy, so no replica runs twice and none is lost."""
    start(fleet, service, 2)
    victim = victim_of(fleet, service)
    others = [n for n in fleet.node_names if n != victim]
    fleet.set_link(victim, False)
    try:
        wait_for(lambda: fleet.node_state(victim) == "NotReady", REPLACE, f"{victim} NotReady", interval=0.25)

        def replaced() -> bool:
            return len(fleet.containers(service, others)) == 2 and fleet.service_ready(service, 2, others)

        wait_for(replaced, REPLACE, f"{service} replaced outside {victim}", interval=0.25)
    finally:
        fleet.set_link(victim, True)
    wait_for(lambda: fleet.node_state(victim) == "Ready", REPLACE, f"{victim} Ready after the heal", interval=0.25)
    wait_for(lambda: not fleet.containers(service, [victim]), REPLACE, f"{victim} clean", interval=0.25)
    assert len(fleet.containers(service)) == 2
    assert duplicates(fleet, service, 2) == 0
    assert fleet.service_ready(service, 2)


def test_power_off_and_return(fleet: Fleet, service: str) -> None:
    """A node loses power (engine, containers, Consul client, agent: all killed at once, link down): its
    replica is replaced elsewhere. When it boots, its engine restarts the stale copy (restart policy
    ``unless-stopped``); the controller counts the node Ready only after its agent removed that copy, and no
    route ever sends the service's traffic to the node (sampled through the whole return)."""
    start(fleet, service, 2)
    victim = victim_of(fleet, service)
    others = [n for n in fleet.node_names if n != victim]
    killed = fleet.power_off(victim)
    assert killed >= 5  # dockerd, containerd, a shim, the container, consul, agent, caddy
    try:
        wait_for(
            lambda: len(fleet.containers(service, others)) == 2 and fleet.service_ready(service, 2, others),
            REPLACE,
            f"{service} replaced outside {victim}",
            interval=0.25,
        )
        wait_for(lambda: fleet.node_state(victim) == "NotReady", REPLACE, f"{victim} NotReady", interval=0.25)
    finally:
        with ReturnWatch(fleet, service, victim) as watch:
            fleet.power_on(victim)
            wait_for(lambda: fleet.node_state(victim) == "Ready", REPLACE, f"{victim} Ready after boot", interval=0.1)
    assert watch.stale_seen, "the engine did not restart the stale copy: the order was not tested"
    assert not watch.ready_with_stale, f"{victim} Ready while its stale copy ran ({len(watch.ready_with_stale)})"
    assert not watch.routed, f"routes/ sent {service} to {victim} during its return: {watch.routed[:3]}"
    assert not fleet.containers(service, [victim])
    assert len(fleet.containers(service)) == 2
    assert duplicates(fleet, service, 2) == 0
    assert fleet.service_ready(service, 2)


class ReturnWatch:
    """Samples a returning node every 50 ms: its state as the controller writes it, then whether a copy of
    ``service`` runs on it (read after the state, so "Ready and a copy running" is never a read-order
    artefact: a removed copy does not come back), and whether ``routes/<host>`` names the node."""

    def __init__(self, fleet: Fleet, service: str, node: str) -> None:
        self.fleet, self.service, self.node = fleet, service, node
        self.stale_seen = False
        self.ready_with_stale: list[float] = []
        self.routed: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReturnWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                state = self.fleet.node_state(self.node)
                running = bool(self.fleet.containers(self.service, [self.node]))
                route = self.fleet.kv(f"routes/{host_of(self.service)}") or {}
            except (OSError, ValueError):  # the server busy for a moment: sample again
                continue
            self.stale_seen |= running
            if state == "Ready" and running:
                self.ready_with_stale.append(time.monotonic())
            self.routed += [u for u in route.get("upstreams", []) if u.get("node") == self.node]
            self._stop.wait(0.05)


def test_gateway_host_power_off_and_boot(fleet: Fleet, service: str) -> None:
    """The gateway host (Consul server, leading controller, gateway) loses power and boots again: the nodes
    keep every container through it (nobody can tell them otherwise), no node is declared lost after the
    boot, and the service answers through the gateway again with the same containers."""
    start(fleet, service, 2)
    before = sorted(c["Id"] for c in fleet.containers(service))
    killed = fleet.power_off("gw")
    assert killed >= 4  # consul, controller, gateway, its Caddy
    try:
        # an outage longer than the grace period (a duration, not a condition: nothing may happen in it)
        time.sleep(fleet.grace + 2)
        during = sorted(c["Id"] for c in fleet.containers(service))
    finally:
        fleet.power_on("gw")
    wait_for(lambda: routed(fleet, service), REPLACE, f"{service} answering through the gateway again", interval=0.25)
    # past the grace period after the boot: no node was declared lost, nothing moved or restarted
    time.sleep(fleet.grace + 5)  # again a duration in which nothing may happen
    assert fleet.nodes_ready(), {n: fleet.node_state(n) for n in fleet.node_names}
    assert fleet.service_ready(service, 2)
    assert duplicates(fleet, service, 2) == 0
    after = sorted(c["Id"] for c in fleet.containers(service))
    # the same containers throughout: a controller that read the restarted server while it replayed its log
    # (default-mode reads) once deleted every assignment, and every agent removed its replicas as orphans
    assert during == before, (before, during)
    assert after == before, (before, after)
