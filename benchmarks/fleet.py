"""meshop and Docker Swarm side by side on the same fleet: the same faults, the same namespaces, the same
engines (tests/support/fleet.py), and the same Caddy proxy options in front.

Figures, for a 2-replica service of busybox httpd on 3 nodes, one replica per node (the third node takes
a replacement; Swarm's host-mode port allows one task per node):

* create -> running: the document applied / ``docker service create`` until 2 containers run and a
  request through the front answers 200;
* rolling update (a new environment value): duration until every replica is replaced, and failed requests
  of a loop running through it;
* node power-off (engine, containers, Consul client, agent killed at once, link down) of a node running a
  replica: time until traffic is off it (the last failed request), time until the replacement runs
  elsewhere, failed requests;
* node return (power-on): time until the node is Ready again and runs nothing stale (from power-on, and
  from the moment its engine answers, when meshop's agent starts), and how many replicas it runs
  afterwards (neither rebalances by placement: moby#24103);
* rebalancing 9 replicas (3 services x 3, n3 powered off and on): meshop with ``rebalance: auto`` from
  n3's Ready until every node runs 3 (the fleet's 8 s stability window included, and apart from the
  first move), Swarm's manual ``docker service update --force`` of each service (random host-mode
  ports, start-first, behind a Caddy whose upstreams follow the engines: the docker-gen pattern) until
  the updates complete; failed requests of a loop per service meanwhile, and how many replicas the
  returned node runs after. ``--rebalance-only`` runs just these.

meshop is measured through its gateway (``meshop gateway run``, TLS off). Swarm has no gateway, and this
kernel has no IPVS, so its routing mesh cannot run: its service publishes port 8081 in host mode on each
node and a Caddy in the gateway namespace proxies to the three nodes with the very options meshop's gateway
renders (``meshop.caddy.render``: retries for 5 s, passive and active health checks), which is how a Swarm
user puts a proxy in front. Host-mode ports rule out start-first, so Swarm updates stop-first, one at a time
(its default), with a 1 s health check like meshop's. Request loops never retry. Prints one table.

    .venv/bin/python benchmarks/fleet.py      # as root; about 4 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.caddy import dns_wire  # noqa: E402
from meshop.caddy.render import ProxyOptions, Site, render_site  # noqa: E402
from tests.support.fleet import (  # noqa: E402
    Fleet,
    RequestLoop,
    find_binary,
    service_doc,
    session_fleet,
    wait_for,
)

SERVICE = "bench"
HOST = "bench.fleet.test"
SWARM_PORT = 8081
LIMIT = 180.0
REPLICAS = 2  # on 3 nodes: a node is free for the replacement (Swarm's host-mode port allows one per node)


def timed(condition: Callable[[], object], what: str, timeout: float = LIMIT, interval: float = 0.1) -> float:
    started = time.monotonic()
    wait_for(condition, timeout, what, interval=interval)
    return time.monotonic() - started


# --- meshop -----------------------------------------------------------------------------------------------


def bench_meshop(fleet: Fleet) -> dict[str, float]:
    out: dict[str, float] = {}
    doc = service_doc(SERVICE, REPLICAS, HOST)
    started = time.monotonic()
    fleet.apply(doc)

    def answering() -> bool:
        from tests.support.fleet import GATEWAY_PORT, http_get

        status = http_get(fleet.gateway.addr, GATEWAY_PORT, HOST, "/", 2)[0]
        return len(fleet.containers(SERVICE)) == REPLICAS and status == 200

    wait_for(answering, LIMIT, "meshop: replicas answering", interval=0.05)
    out["create_s"] = time.monotonic() - started
    wait_for(lambda: fleet.service_ready(SERVICE, REPLICAS), LIMIT, "meshop: Ready")

    before = {c["Id"] for c in fleet.containers(SERVICE)}
    loop = RequestLoop(fleet.gateway.addr, HOST).start()
    time.sleep(1)
    started = time.monotonic()
    fleet.apply(service_doc(SERVICE, REPLICAS, HOST, version="2"))
    out["update_s"] = timed(
        lambda: (
            (now := fleet.containers(SERVICE))
            and len(now) == REPLICAS
            and not {c["Id"] for c in now} & before
            and fleet.service_ready(SERVICE, REPLICAS)
        ),
        "meshop: update done",
        interval=0.1,
    )
    time.sleep(1)
    loop.stop()
    out["update_failed"] = len(loop.failures)
    out["update_requests"] = loop.total

    victim = max(c["node"] for c in fleet.containers(SERVICE))  # never n1: it runs the standby controller
    others = [n for n in fleet.node_names if n != victim]
    loop = RequestLoop(fleet.gateway.addr, HOST).start()
    time.sleep(1)
    victim_addr = fleet.node(victim).addr
    cut = time.monotonic()
    fleet.power_off(victim)
    moments = watch_poweroff(fleet, victim, victim_addr, cut)
    out["poweroff_replaced_s"] = timed(
        lambda: len(fleet.containers(SERVICE, others)) == REPLICAS and fleet.service_ready(SERVICE, REPLICAS, others),
        "meshop: replacement running",
    )
    time.sleep(3)
    loop.stop()
    moments.stop()
    out["poweroff_traffic_off_s"] = loop.disturbed_until(cut)
    out["poweroff_checks_failed_s"] = moments.checks_failed
    out["poweroff_route_dropped_s"] = moments.route_dropped
    out["poweroff_dns_dropped_s"] = moments.dns_dropped
    out["poweroff_traffic_off_after_checks_s"] = max(0.0, out["poweroff_traffic_off_s"] - moments.checks_failed)
    out["poweroff_replaced_after_checks_s"] = out["poweroff_replaced_s"] - moments.checks_failed
    out["poweroff_slow"] = len(loop.slow)
    out["poweroff_failed"] = len(loop.failures)
    out["poweroff_requests"] = loop.total

    started = time.monotonic()  # the boot (engine start) counts, for both
    fleet.power_on(victim)
    booted = time.monotonic()  # power_on returns once the engine answers and the agent is spawned
    wait_for(
        lambda: fleet.node_state(victim) == "Ready" and not fleet.containers(SERVICE, [victim]),
        LIMIT,
        "meshop: node back and clean",
        interval=0.05,
    )
    out["return_ready_s"] = time.monotonic() - started
    out["return_after_engine_s"] = time.monotonic() - booted
    out["return_replicas_on_node"] = len(fleet.containers(SERVICE, [victim]))
    fleet.cli("delete", "service", SERVICE)
    wait_for(lambda: not fleet.containers(SERVICE), LIMIT, "meshop: service gone")
    return out


REBALANCED = [f"{SERVICE}-r{i}" for i in range(3)]  # 3 services x 3 replicas: 9 replicas, 3 per node


def bench_meshop_rebalance(fleet: Fleet) -> dict[str, float]:
    """3 services x 3 replicas (``spread: false``, ``rebalance: auto``) on 3 nodes; n3 powered off (its
    replicas move to n1/n2) and on again: seconds from n3's Ready until every node runs 3 again (the
    fleet's stability window included, and apart: from the first move's start), and the failed requests
    of one loop per service through the gateway meanwhile."""
    out: dict[str, float] = {}
    for name in REBALANCED:
        placement = {"spread": False, "rebalance": "auto"}
        fleet.apply(service_doc(name, 3, f"{name}.fleet.test", placement=placement))
    for name in REBALANCED:
        wait_for(lambda n=name: fleet.service_ready(n, 3), LIMIT, f"meshop: {name} Ready")
    others = ["n1", "n2"]
    fleet.power_off("n3")
    for name in REBALANCED:
        wait_for(lambda n=name: fleet.service_ready(n, 3, others), LIMIT, f"meshop: {name} on n1/n2")
    fleet.power_on("n3")
    wait_for(lambda: fleet.node_state("n3") == "Ready", LIMIT, "meshop: n3 Ready")
    ready = time.monotonic()
    loops = [RequestLoop(fleet.gateway.addr, f"{name}.fleet.test").start() for name in REBALANCED]
    first = wait_for(
        lambda: time.monotonic() if any(fleet.containers(n, ["n3"]) for n in REBALANCED) else None, LIMIT,
        "meshop: the first move", interval=0.05,
    )  # fmt: skip

    def balanced() -> bool:
        counts = Counter(c["node"] for n in REBALANCED for c in fleet.containers(n))
        return counts == Counter({n: 3 for n in fleet.node_names}) and all(
            fleet.service_ready(n, 3) for n in REBALANCED
        )

    wait_for(balanced, LIMIT, "meshop: 3 replicas per node", interval=0.1)
    done = time.monotonic()
    time.sleep(2)
    for loop in loops:
        loop.stop()
    out["rebalance_s"] = done - ready
    out["rebalance_window_s"] = fleet.rebalance_stable
    out["rebalance_moves_s"] = done - first
    out["rebalance_failed"] = sum(len(loop.failures) for loop in loops)
    out["rebalance_requests"] = sum(loop.total for loop in loops)
    out["rebalance_on_node_after"] = len([c for n in REBALANCED for c in fleet.containers(n, ["n3"])])
    for name in REBALANCED:
        fleet.cli("delete", "service", name)
    for name in REBALANCED:
        wait_for(lambda n=name: not fleet.containers(n), LIMIT, f"meshop: {name} gone")
    return out


class PowerOffMoments:
    """Seconds from the cut until Consul counts the node's replica checks as failed (its ``serfHealth``
    critical: the node's own agent, which ran them, is gone), until ``routes/<HOST>`` drops it, and until
    the gateway's upstream DNS answer (what its Caddy uses, cached 1 s) drops it."""

    def __init__(self, fleet: Fleet, victim: str, victim_addr: str, cut: float) -> None:
        self.checks_failed = self.route_dropped = self.dns_dropped = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fleet, victim, victim_addr, cut), daemon=True)
        self._thread.start()
        self._dns = threading.Thread(target=self._run_dns, args=(fleet, victim_addr, cut), daemon=True)
        self._dns.start()

    def _run_dns(self, fleet: Fleet, victim_addr: str, cut: float) -> None:
        """Ask the gateway's responder for HOST: on its unix SEQPACKET socket (the default since issue 24:
        a path, reachable from any network namespace), or in the gateway's network namespace (this thread
        only: setns) on its loopback UDP port."""
        log = (fleet.gateway.dir / "gateway.log").read_text(errors="replace")
        unix = re.findall(r"upstream DNS for Caddy on unixpacket/(/\S+)", log)
        found = re.findall(r"upstream DNS for Caddy on (?:udp/)?([0-9.]+):(\d+)", log)
        if not unix and not found:
            return
        target = dns_wire.target_name(victim_addr)
        query = dns_wire.query(dns_wire.site_name(HOST), dns_wire.TYPE_SRV)
        if not unix:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            with open(f"/var/run/netns/{fleet.gateway.ns}") as ns:
                if libc.setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
                    return
        while not self._stop.is_set() and math.isnan(self.dns_dropped):
            try:
                family, kind = (socket.AF_UNIX, socket.SOCK_SEQPACKET) if unix else (socket.AF_INET, socket.SOCK_DGRAM)
                with socket.socket(family, kind) as sock:  # a connection per lookup, as Caddy's resolver
                    sock.settimeout(1)
                    sock.connect(unix[-1] if unix else (found[-1][0], int(found[-1][1])))
                    sock.send(query)
                    if target is not None and target.encode() not in _labels(sock.recv(512)):
                        self.dns_dropped = time.monotonic() - cut
            except OSError:
                pass
            self._stop.wait(0.05)

    def _run(self, fleet: Fleet, victim: str, victim_addr: str, cut: float) -> None:
        pending = lambda: math.isnan(self.checks_failed) or math.isnan(self.route_dropped)  # noqa: E731
        while not self._stop.is_set() and pending():
            try:
                if math.isnan(self.checks_failed):
                    checks = fleet.consul_get(f"/v1/health/node/{victim}") or []
                    if any(c["CheckID"] == "serfHealth" and c["Status"] == "critical" for c in checks):
                        self.checks_failed = time.monotonic() - cut
                if math.isnan(self.route_dropped):
                    route = fleet.kv(f"routes/{HOST}") or {}
                    ups = route.get("upstreams", [])
                    if all(u.get("address") != victim_addr or not u.get("healthy") for u in ups):
                        self.route_dropped = time.monotonic() - cut
            except OSError:
                pass
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._dns.join(timeout=5)


def _labels(packet: bytes) -> bytes:
    """The packet with length-prefixed labels turned into dotted text, enough to search a target name."""
    out, i = bytearray(), 0
    while i < len(packet):
        n = packet[i]
        if 0 < n < 64 and i + 1 + n <= len(packet) and packet[i + 1 : i + 1 + n].isascii():
            out += packet[i + 1 : i + 1 + n] + b"."
            i += 1 + n
        else:
            out += b" "
            i += 1
    return bytes(out)


def watch_poweroff(fleet: Fleet, victim: str, victim_addr: str, cut: float) -> PowerOffMoments:
    return PowerOffMoments(fleet, victim, victim_addr, cut)


# --- Docker Swarm -------------------------------------------------------------------------------------------


def docker(fleet: Fleet, node: str, *args: str) -> str:
    result = subprocess.run(
        ["docker", "-H", fleet.node(node).docker_host, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} on {node}: {result.stderr.strip()}")
    return result.stdout


def swarm_front(fleet: Fleet) -> None:
    """A Caddy in the gateway namespace in front of the three nodes' host-mode ports, meshop's proxy options."""
    gw = fleet.gateway
    upstreams = tuple(f"{fleet.node(n).addr}:{SWARM_PORT}" for n in fleet.node_names)
    site = render_site(
        Site(HOST, "/", upstreams, health_path="/"),
        scheme="http",
        bind=(gw.addr,),
        tls=None,
        proxy=ProxyOptions(),
        port=SWARM_PORT,
    )
    folder = gw.dir / "swarm-caddy"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tauto_https off\n}\n" + site)
    env = {"HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config")}
    fleet.spawn(
        gw, "swarm-caddy", [find_binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"], env
    )


def swarm_running(fleet: Fleet, nodes: list[str] | None = None) -> int:
    """Containers of the Swarm service running on ``nodes`` (every engine that answers, by default)."""
    total = 0
    for name in nodes or fleet.node_names:
        if not fleet.node(name).running("dockerd"):
            continue
        result = subprocess.run(
            [
                "docker",
                "-H",
                fleet.node(name).docker_host,
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.swarm.service.name={SERVICE}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        total += len(result.stdout.split()) if result.returncode == 0 else 0
    return total


def swarm_node_ready(fleet: Fleet, name: str) -> bool:
    out = docker(fleet, "n1", "node", "ls", "--format", "{{.ID}} {{.Status}}")
    node_id = docker(fleet, name, "info", "--format", "{{.Swarm.NodeID}}").strip()
    return any(line.split()[0] == node_id and line.split()[1] == "Ready" for line in out.splitlines())


def swarm_init(fleet: Fleet) -> None:
    """n1 the manager, the other engines workers, over the fleet's bridge."""
    n1 = fleet.node("n1")
    docker(fleet, "n1", "swarm", "init", "--advertise-addr", n1.addr, "--listen-addr", f"{n1.addr}:2377")
    token = docker(fleet, "n1", "swarm", "join-token", "-q", "worker").strip()
    for name in fleet.node_names[1:]:
        addr = fleet.node(name).addr
        docker(
            fleet,
            name,
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            addr,
            "--listen-addr",
            f"{addr}:2377",
            f"{n1.addr}:2377",
        )


def swarm_leave(fleet: Fleet) -> None:
    for name in reversed(fleet.node_names):
        docker(fleet, name, "swarm", "leave", "--force")


def bench_swarm(fleet: Fleet) -> dict[str, float]:
    out: dict[str, float] = {}
    swarm_init(fleet)
    swarm_front(fleet)
    from tests.support.fleet import http_get

    def answering() -> bool:
        return swarm_running(fleet) == REPLICAS and http_get(fleet.gateway.addr, SWARM_PORT, HOST, "/", 2)[0] == 200

    started = time.monotonic()
    docker(
        fleet, "n1", "service", "create", "-d", "--name", SERVICE, "--replicas", str(REPLICAS), "--env", "VERSION=1",
        "--publish", f"published={SWARM_PORT},target=80,mode=host", "--update-parallelism", "1",
        "--health-cmd", "wget -q -O /dev/null http://127.0.0.1/ || exit 1", "--health-interval", "1s",
        "--health-timeout", "1s", "meshop-test/busybox:1", "/bin/httpd", "-f", "-p", "80", "-h", "/www",
    )  # fmt: skip
    wait_for(answering, LIMIT, "swarm: tasks answering", interval=0.05)
    out["create_s"] = time.monotonic() - started

    loop = RequestLoop(fleet.gateway.addr, HOST, port=SWARM_PORT).start()
    time.sleep(1)
    started = time.monotonic()
    docker(fleet, "n1", "service", "update", "-d", "--env-add", "VERSION=2", SERVICE)

    def updated() -> bool:
        state = docker(fleet, "n1", "service", "inspect", SERVICE, "--format", "{{json .UpdateStatus}}")
        return '"completed"' in state and swarm_running(fleet) == REPLICAS

    out["update_s"] = timed(updated, "swarm: update completed")
    time.sleep(1)
    loop.stop()
    out["update_failed"] = len(loop.failures)
    out["update_requests"] = loop.total

    victim = max(n for n in fleet.node_names if swarm_running(fleet, [n]))
    others = [n for n in fleet.node_names if n != victim]
    loop = RequestLoop(fleet.gateway.addr, HOST, port=SWARM_PORT).start()
    time.sleep(1)
    cut = time.monotonic()
    fleet.power_off(victim)
    out["poweroff_replaced_s"] = timed(lambda: swarm_running(fleet, others) == REPLICAS, "swarm: replacement running")
    time.sleep(3)
    loop.stop()
    out["poweroff_traffic_off_s"] = loop.disturbed_until(cut)
    out["poweroff_slow"] = len(loop.slow)
    out["poweroff_failed"] = len(loop.failures)
    out["poweroff_requests"] = loop.total

    started = time.monotonic()
    fleet.power_on(victim)
    booted = time.monotonic()  # once the engine answers
    wait_for(
        lambda: swarm_node_ready(fleet, victim) and swarm_running(fleet, [victim]) == 0
        and swarm_running(fleet) == REPLICAS,
        LIMIT,
        "swarm: node back and clean",
        interval=0.05,
    )  # fmt: skip
    out["return_ready_s"] = time.monotonic() - started
    out["return_after_engine_s"] = time.monotonic() - booted
    out["return_replicas_on_node"] = swarm_running(fleet, [victim])
    docker(fleet, "n1", "service", "rm", SERVICE)
    fleet.stop(fleet.gateway, "swarm-caddy")  # the rebalance's front takes the port (idempotent below)
    out.update(bench_swarm_rebalance(fleet))
    swarm_leave(fleet)
    fleet.stop(fleet.gateway, "swarm-caddy")
    return out


class SwarmFront:
    """A Caddy in the gateway namespace in front of Swarm tasks published on random host ports (so a node may
    run several tasks of a service), its upstreams re-read from the engines every 0.2 s and loaded through
    Caddy's admin API when they change: the docker-gen pattern, Swarm's way without the routing mesh."""

    def __init__(self, fleet: Fleet, services: list[str]) -> None:
        self.fleet, self.services = fleet, services
        self.folder = fleet.gateway.dir / "swarm-rb-caddy"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.admin = self.folder / "admin.sock"
        self.upstreams: dict[str, tuple[str, ...]] = {}
        self.loads = 0
        self._stop = threading.Event()
        config = self.folder / "Caddyfile"
        config.write_text(self._config({}))
        env = {"HOME": str(self.folder), "XDG_DATA_HOME": str(self.folder / "data")}
        env["XDG_CONFIG_HOME"] = str(self.folder / "config")
        caddy = [find_binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"]
        fleet.spawn(fleet.gateway, "swarm-rb-caddy", caddy, env)
        wait_for(self.admin.exists, 30, "the Swarm front's admin socket")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _config(self, upstreams: dict[str, tuple[str, ...]]) -> str:
        head = f"{{\n\tadmin unix/{self.admin}\n\tauto_https off\n}}\n"
        sites = [
            render_site(
                Site(f"{name}.fleet.test", "/", ups, health_path="/"),
                scheme="http",
                bind=(self.fleet.gateway.addr,),
                tls=None,
                proxy=ProxyOptions(),
                port=SWARM_PORT,
            )
            for name, ups in sorted(upstreams.items())
            if ups
        ]
        return head + "".join(sites)

    def tasks(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {name: [] for name in self.services}
        for node in self.fleet.node_names:
            if not self.fleet.node(node).running("dockerd"):
                continue
            result = subprocess.run(
                ["docker", "-H", self.fleet.node(node).docker_host, "ps", "--format",
                 '{{.Label "com.docker.swarm.service.name"}} {{.Ports}}'],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            for line in result.stdout.splitlines():
                name, _, ports = line.partition(" ")
                port = re.search(r":(\d+)->80/tcp", ports)
                if name in found and port:
                    found[name].append(f"{self.fleet.node(node).addr}:{port.group(1)}")
        return {name: tuple(sorted(ups)) for name, ups in found.items()}

    def _load(self, upstreams: dict[str, tuple[str, ...]]) -> None:
        from tests.support.fleet import _UnixConnection

        body = self._config(upstreams).encode()
        conn = _UnixConnection(self.admin, 10.0)
        conn.putrequest("POST", "/load", skip_host=True)
        conn.putheader("Host", "")  # Caddy's admin API on a unix socket takes no other Host
        conn.putheader("Content-Type", "text/caddyfile")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status == 200:
            self.upstreams, self.loads = upstreams, self.loads + 1

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(Exception):  # an engine mid-boot: the next round reads it again
                current = self.tasks()
                if current != self.upstreams:
                    self._load(current)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.fleet.stop(self.fleet.gateway, "swarm-rb-caddy")


def bench_swarm_rebalance(fleet: Fleet) -> dict[str, float]:
    """The same 9 replicas (3 services x 3, random host ports, start-first updates) in Swarm: n3 powered off
    and on, then Swarm's manual rebalance, ``docker service update --force`` of each service, timed from
    the command until every node runs 3 and the updates completed, with a loop per service through the
    front meanwhile. Swarm never rebalances by itself (moby#24103)."""
    out: dict[str, float] = {}
    for name in REBALANCED:
        docker(
            fleet, "n1", "service", "create", "-d", "--name", name, "--replicas", "3",
            "--publish", "target=80,mode=host",
            "--update-order", "start-first", "--update-parallelism", "1",
            "--health-cmd", "wget -q -O /dev/null http://127.0.0.1/ || exit 1", "--health-interval", "1s",
            "--health-timeout", "1s", "meshop-test/busybox:1", "/bin/httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
    front = SwarmFront(fleet, REBALANCED)
    try:

        def per_node() -> Counter[str]:
            return Counter(addr.rpartition(":")[0] for ups in front.tasks().values() for addr in ups)

        addrs = {fleet.node(n).addr: n for n in fleet.node_names}
        wait_for(lambda: sum(per_node().values()) == 9 and front.upstreams == front.tasks(), LIMIT, "swarm: 9 tasks")
        fleet.power_off("n3")
        wait_for(lambda: sum(per_node().values()) == 9, LIMIT, "swarm: 9 tasks on n1/n2")
        fleet.power_on("n3")
        wait_for(lambda: swarm_node_ready(fleet, "n3"), LIMIT, "swarm: n3 Ready")
        out["rebalance_left_alone"] = per_node()[fleet.node("n3").addr]  # Swarm moves nothing by itself
        wait_for(lambda: front.upstreams == front.tasks(), LIMIT, "swarm: the front up to date")
        loops = [RequestLoop(fleet.gateway.addr, f"{n}.fleet.test", port=SWARM_PORT).start() for n in REBALANCED]
        time.sleep(1)
        started = time.monotonic()
        for name in REBALANCED:
            docker(fleet, "n1", "service", "update", "-d", "--force", name)

        def updated() -> bool:
            states = [
                docker(fleet, "n1", "service", "inspect", n, "--format", "{{json .UpdateStatus}}") for n in REBALANCED
            ]
            return all('"completed"' in s for s in states) and sum(per_node().values()) == 9

        wait_for(updated, 2 * LIMIT, "swarm: every service update --force completed", interval=0.2)
        out["rebalance_moves_s"] = time.monotonic() - started  # from the command: nothing moves before it
        counts = {addrs.get(a, a): c for a, c in per_node().items()}
        print("swarm: tasks per node after --force:", dict(sorted(counts.items())), flush=True)
        out["rebalance_on_node_after"] = counts.get("n3", 0)
        time.sleep(2)
        for loop in loops:
            loop.stop()
        out["rebalance_failed"] = sum(len(loop.failures) for loop in loops)
        out["rebalance_requests"] = sum(loop.total for loop in loops)
        out["rebalance_front_loads"] = front.loads
    finally:
        front.stop()
        for name in REBALANCED:
            subprocess.run(["docker", "-H", fleet.node("n1").docker_host, "service", "rm", name], check=False)
    return out


ROWS = [
    ("create -> running (s)", "create_s"),
    ("rolling update: duration (s)", "update_s"),
    ("rolling update: failed requests", "update_failed"),
    ("rolling update: requests sent", "update_requests"),
    ("power-off: clients served normally after (s)", "poweroff_traffic_off_s"),
    ("power-off: replacement running (s)", "poweroff_replaced_s"),
    ("power-off: replica checks failed (s)", "poweroff_checks_failed_s"),
    ("power-off: routes/ without the node (s)", "poweroff_route_dropped_s"),
    ("power-off: gateway DNS without the node (s)", "poweroff_dns_dropped_s"),
    ("power-off: traffic off, after checks failed (s)", "poweroff_traffic_off_after_checks_s"),
    ("power-off: replacement, after checks failed (s)", "poweroff_replaced_after_checks_s"),
    ("power-off: failed requests", "poweroff_failed"),
    ("power-off: slow requests (> 1 s)", "poweroff_slow"),
    ("power-off: requests sent", "poweroff_requests"),
    ("node return: Ready and clean (s)", "return_ready_s"),
    ("node return: from its engine up (s)", "return_after_engine_s"),
    ("node return: replicas on it after", "return_replicas_on_node"),
    ("rebalance 9 replicas: node Ready -> 3 per node (s)", "rebalance_s"),
    ("rebalance: of which stability window (s)", "rebalance_window_s"),
    ("rebalance: first move -> 3 per node (s)", "rebalance_moves_s"),
    ("rebalance: failed requests", "rebalance_failed"),
    ("rebalance: requests sent", "rebalance_requests"),
    ("rebalance: replicas on the node without asking", "rebalance_left_alone"),
    ("rebalance: replicas on the node after", "rebalance_on_node_after"),
]


def table(meshop: dict[str, float], swarm: dict[str, float]) -> str:
    lines = [f"{'figure':52} {'meshop':>9} {'swarm':>9} {'meshop/swarm':>13}"]
    for label, key in ROWS:
        m, s = meshop.get(key), swarm.get(key)
        ratio = f"{m / s:.2f}" if m is not None and s else "-"
        fmt = (lambda v: f"{v:.2f}") if key.endswith("_s") else (lambda v: f"{v:.0f}")
        lines.append(
            f"{label:52} {fmt(m) if m is not None else '-':>9} {fmt(s) if s is not None else '-':>9} {ratio:>13}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=10.0, help="meshop controllers' --grace-period")
    parser.add_argument("--meshop-only", action="store_true", help="skip the Swarm half")
    parser.add_argument("--rebalance-only", action="store_true", help="only the rebalancing figures (both halves)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mfbench-", dir="/tmp"))
    try:
        with session_fleet(root, grace=args.grace) as fleet:
            meshop = {} if args.rebalance_only else bench_meshop(fleet)
            meshop.update(bench_meshop_rebalance(fleet))
            print("meshop:", json.dumps({k: round(v, 2) for k, v in meshop.items()}), flush=True)
            if args.meshop_only:
                swarm = {}
            elif args.rebalance_only:
                swarm_init(fleet)
                swarm = bench_swarm_rebalance(fleet)
                swarm_leave(fleet)
            else:
                swarm = bench_swarm(fleet)
            print("swarm: ", json.dumps({k: round(v, 2) for k, v in swarm.items()}), flush=True)
    finally:
        if not (root / "fleet.json").exists():  # kept when the teardown failed: `... fleet down --root ROOT`
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n3 nodes + gateway in network namespaces; meshop grace period {args.grace:g} s; Swarm defaults")
    print(table(meshop, swarm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
