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
  afterwards (neither rebalances: moby#24103).

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
        """In the gateway's network namespace (this thread only: setns), ask its responder for HOST."""
        log = (fleet.gateway.dir / "gateway.log").read_text(errors="replace")
        found = re.findall(r"upstream DNS for Caddy on udp/([0-9.]+):(\d+)", log)
        if not found:
            return
        host, port = found[-1][0], int(found[-1][1])
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        with open(f"/var/run/netns/{fleet.gateway.ns}") as ns:
            if libc.setns(ns.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
                return
        target = dns_wire.target_name(victim_addr)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            while not self._stop.is_set() and math.isnan(self.dns_dropped):
                try:
                    sock.sendto(dns_wire.query(dns_wire.site_name(HOST), dns_wire.TYPE_SRV), (host, port))
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


def bench_swarm(fleet: Fleet) -> dict[str, float]:
    out: dict[str, float] = {}
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
    for name in reversed(fleet.node_names):
        docker(fleet, name, "swarm", "leave", "--force")
    fleet.stop(fleet.gateway, "swarm-caddy")
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
]


def table(meshop: dict[str, float], swarm: dict[str, float]) -> str:
    lines = [f"{'figure':46} {'meshop':>9} {'swarm':>9} {'meshop/swarm':>13}"]
    for label, key in ROWS:
        m, s = meshop.get(key), swarm.get(key)
        ratio = f"{m / s:.2f}" if m is not None and s else "-"
        fmt = (lambda v: f"{v:.2f}") if key.endswith("_s") else (lambda v: f"{v:.0f}")
        lines.append(
            f"{label:46} {fmt(m) if m is not None else '-':>9} {fmt(s) if s is not None else '-':>9} {ratio:>13}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=10.0, help="meshop controllers' --grace-period")
    parser.add_argument("--meshop-only", action="store_true", help="skip the Swarm half")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mfbench-", dir="/tmp"))
    try:
        with session_fleet(root, grace=args.grace) as fleet:
            meshop = bench_meshop(fleet)
            print("meshop:", json.dumps({k: round(v, 2) for k, v in meshop.items()}), flush=True)
            swarm = {} if args.meshop_only else bench_swarm(fleet)
            print("swarm: ", json.dumps({k: round(v, 2) for k, v in swarm.items()}), flush=True)
    finally:
        if not (root / "fleet.json").exists():  # kept when the teardown failed: `... fleet down --root ROOT`
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n3 nodes + gateway in network namespaces; meshop grace period {args.grace:g} s; Swarm defaults")
    print(table(meshop, swarm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
