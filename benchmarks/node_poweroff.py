"""How fast a dead node's upstreams leave the routes and the gateway, after its replicas' checks fail.

Two "nodes" on one machine: n1's agent and replica are registered on the dev Consul server's agent,
n2's on a second, real Consul client agent joined to it on loopback (its own node in the catalog).
Each replica has a real TCP check (a listener in this process) run by its node's Consul agent. An
in-process controller (grace period 10 s, as in issue 12) places a routed service with 2 replicas on
them; observed state is written as a healthy agent would; ``meshop gateway run`` (a real process with
its own Caddy) serves the route. Then n2 is "powered off": its Consul agent is SIGKILLed (it cannot
leave, nor mark anything critical) and its agent heartbeat stops. Measured, polling every 20 ms:

* kill -> Consul marks n2's ``serfHealth`` critical (the moment n2's replica checks count as failed);
* that moment -> ``routes/<host>`` without n2 (the controller's decision);
* that moment -> the gateway's upstream DNS answer for the route without n2's upstream (what its Caddy
  uses for the route, cached 1 s: upstream changes load no Caddy config any more).

The nodes' "Caddies" are listeners in this process that stay up (only n2's Consul agent dies), so the
gateway's own TCP checks pass for both and the figure is Consul's path: checks -> route -> gateway.

    .venv/bin/python benchmarks/node_poweroff.py [--repeat 3]

Every process is started and stopped by PID; the client agent's data folder is temporary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.caddy import dns_wire  # noqa: E402
from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from meshop.model import keys  # noqa: E402
from meshop.model.records import (  # noqa: E402
    Assignment,
    Capacity,
    ContainerState,
    NodeRecord,
    Observed,
    RouteRecord,
    dumps,
    loads_json,
)
from meshop.operator.controller import Controller, ControllerOptions  # noqa: E402
from tests.integration.routing.helpers import start_gateway, stop_caddy_dir  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.procs import Process, find_binary, free_port, wait_until  # noqa: E402

HOST = "web.bench"
GRACE = 10.0


def consul_put(addr: str, path: str, body: object) -> None:
    request = urllib.request.Request(f"http://{addr}{path}", data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=5):
        pass


def consul_get(addr: str, path: str) -> object:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as response:
        return json.loads(response.read() or b"null")


class Listener:
    """A TCP port that accepts (and closes) connections: what a replica's TCP check needs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except OSError:
                return


def dns_ports(gateway_log: Path) -> set[int]:
    """The upstream ports the gateway's upstream DNS answers for HOST now (its address from its log)."""
    found = re.findall(r"upstream DNS for Caddy on udp/([0-9.]+):(\d+)", gateway_log.read_text(errors="replace"))
    if not found:
        return set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(dns_wire.query(dns_wire.site_name(HOST), dns_wire.TYPE_SRV), (found[-1][0], int(found[-1][1])))
        packet = sock.recv(512)
    ports, offset = set(), 12
    while packet[offset]:
        offset += packet[offset] + 1
    offset += 5
    for _ in range(int.from_bytes(packet[6:8], "big")):
        length = int.from_bytes(packet[offset + 10 : offset + 12], "big")
        ports.add(int.from_bytes(packet[offset + 16 : offset + 18], "big"))
        offset += 12 + length
    return ports


def register(addr: str, node: str, service: str, sid: str, port: int, check: dict[str, object]) -> None:
    body = {"ID": sid, "Name": service, "Address": "127.0.0.1", "Port": port, "Meta": {"node": node}}
    body["Checks"] = [check]
    consul_put(addr, "/v1/agent/service/register", body)


def heartbeat(addr: str, check_id: str, stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            consul_put(addr, f"/v1/agent/check/pass/{check_id}", None)
        stop.wait(0.3)


def one_run(workdir: Path) -> tuple[float, float, float]:
    server = ConsulServer(workdir / "consul").start()
    prefix = f"b-{secrets.token_hex(3)}"
    config = ConsulConfig.from_env({}, addr=server.addr, prefix=prefix, timeout=5.0)
    store = KVStore(config)
    client_http = free_port()
    client_node = f"bench-client-{secrets.token_hex(3)}"
    client = Process(
        [
            find_binary("consul", "MESHOP_CONSUL_BIN"),
            "agent",
            "-node",
            client_node,
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-http-port",
            str(client_http),
            "-dns-port",
            "-1",
            "-grpc-port",
            "-1",
            "-serf-lan-port",
            str(free_port()),
            "-data-dir",
            tempfile.mkdtemp(dir=workdir),
            "-retry-join",
            f"127.0.0.1:{server.ports['serf_lan']}",
            "-log-level",
            "warn",
        ],
        workdir / "client.log",
    ).start()
    stop_beats = threading.Event()
    controller = gateway = None
    try:
        client_addr = f"127.0.0.1:{client_http}"
        wait_until(lambda: consul_get(client_addr, "/v1/status/leader"), 30, what="the client agent to join")
        listeners = {"n1": Listener(), "n2": Listener()}
        ingress_listeners = {"n1": Listener(), "n2": Listener()}  # the nodes' Caddies: up all along
        ingress = {node: listener.port for node, listener in ingress_listeners.items()}
        for node, addr in (("n1", server.addr), ("n2", client_addr)):
            capacity = Capacity(2.0, 2 * 1024**3)
            record = NodeRecord(node, "127.0.0.1", {}, capacity, version="bench", ingress_port=ingress[node])
            store.put(keys.node(node), dumps(record))
            ttl = {"CheckID": f"meshop-agent-{node}:ttl", "Name": "agent", "TTL": "3s", "Status": "passing"}
            register(addr, node, f"meshop-agent-{node}", f"meshop-agent-{node}", 0, ttl)
            threading.Thread(target=heartbeat, args=(addr, f"meshop-agent-{node}:ttl", stop_beats), daemon=True).start()
            sid = f"meshop-{node}-web-0"
            tcp = {"CheckID": f"{sid}:health", "Name": "web", "TCP": f"127.0.0.1:{listeners[node].port}"}
            register(addr, node, "web", sid, listeners[node].port, {**tcp, "Interval": "1s", "Timeout": "1s"})
        doc = {
            "apiVersion": "meshop.io/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"image": "bench/web:1", "replicas": 2, "ports": [{"name": "http", "container": 80}]},
        }
        doc["spec"]["route"] = {"host": HOST, "port": "http"}
        store.put(keys.desired_service("web"), json.dumps(doc))
        gateway = start_gateway(server.addr, prefix, workdir)
        options = ControllerOptions(f"{prefix}-c", grace_period=GRACE, lock_delay=1, check_ttl=1.0, local_cluster=True)
        controller = Controller(config, options).start()

        def assignment(node: str) -> Assignment | None:
            entry = store.get(keys.assignment(node, "web"))
            return Assignment.from_dict(loads_json(entry.value)) if entry else None

        wait_until(lambda: assignment("n1") and assignment("n2"), 30, what="both assignments")
        for node in ("n1", "n2"):
            a = assignment(node)
            assert a is not None
            container = ContainerState(f"{node}-web-0", "web-0", 0, "bench/web:1", "running", "passing", a.spec_hash)
            seen = Observed("web", node, a.spec_hash, a.generation, 1, (container,))
            store.put(keys.observed(node, "web"), dumps(seen))

        def route_nodes() -> list[str]:
            entry = store.get(keys.route(HOST))
            return [u.node for u in RouteRecord.from_dict(loads_json(entry.value)).upstreams] if entry else []

        gateway_log = gateway.process.log_path
        wait_until(lambda: route_nodes() == ["n1", "n2"], 30, what="the route on both nodes")
        wait_until(
            lambda: ingress["n2"] in dns_ports(gateway_log),
            30,
            what=f"the gateway serving n2\n{gateway.process.log_tail()}",
        )

        client.kill()  # power off: no leave, nothing marked critical by n2 itself
        killed = time.monotonic()
        serf_at = route_at = gateway_at = 0.0
        deadline = killed + GRACE + 60
        while time.monotonic() < deadline and not (serf_at and route_at and gateway_at):
            # Each moment is taken when its answer arrived (resolution: one round of three requests).
            if not serf_at:
                checks = consul_get(server.addr, f"/v1/health/node/{client_node}") or []
                if any(c["CheckID"] == "serfHealth" and c["Status"] == "critical" for c in checks):  # type: ignore[union-attr]
                    serf_at = time.monotonic()
            if not route_at and "n2" not in route_nodes():
                route_at = time.monotonic()
            if not gateway_at and ingress["n2"] not in dns_ports(gateway_log):
                gateway_at = time.monotonic()
            time.sleep(0.01)
        if not (serf_at and route_at and gateway_at):
            raise RuntimeError(f"timed out: serf {serf_at}, route {route_at}, gateway {gateway_at}")
        return serf_at - killed, route_at - serf_at, gateway_at - serf_at
    finally:
        stop_beats.set()
        if controller is not None:
            controller.stop()
        if gateway is not None:
            gateway.process.stop()
            stop_caddy_dir(gateway.caddy_dir)
        client.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="meshop-poweroff-") as tmp:
            try:
                runs.append(one_run(Path(tmp)))
            except Exception:
                for log in Path(tmp).rglob("*.log"):
                    print(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
                raise
        print(
            f"run {i + 1}: serfHealth critical {runs[-1][0]:.2f} s after the kill; route {runs[-1][1]:+.3f} s, "
            f"gateway {runs[-1][2]:+.3f} s after that",
            flush=True,
        )
    print(f"\nnode power-off, grace period {GRACE:.0f} s, {len(runs)} runs (median / max):")
    for label, idx in (
        ("kill -> n2's serfHealth critical (its replica checks fail)", 0),
        ("replica checks fail -> routes/<host> without n2", 1),
        ("replica checks fail -> gateway's upstream DNS without n2", 2),
    ):
        values = [r[idx] for r in runs]
        print(f"  {label:60s} {statistics.median(values):7.3f} s / {max(values):7.3f} s")


if __name__ == "__main__":
    main()
