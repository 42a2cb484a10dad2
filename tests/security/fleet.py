"""Fixtures for the controller/gateway attacks: a cluster as a fleet runs it (no ``--local-cluster``):
real Consul, an in-process controller, a real
``meshop gateway run`` with its own Caddy (plain HTTP on loopback; names resolved through a hosts file of
its own, in a private mount namespace), and one honest node whose "node Caddy"
is an HTTP server in a network namespace of its own (10.213.x.2), so the honest address is not loopback.
Nodes are ``SimNode``s: records and registrations written as an agent (or a compromised one) would.
Every process is stopped by its PID; the namespace is deleted at the end.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.operator.sim import SimNode
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import Process, free_port, wait_until

HONEST_NAME = "honest.nodes.sec.test"  # resolves to the honest node's address, for the gateway only
LOOPBACK_NAME = "loop.nodes.sec.test"  # resolves to 127.0.0.1, for the gateway only


@dataclass
class Netns:
    name: str
    address: str
    port: int


@pytest.fixture(scope="module")
def honest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netns]:
    """An HTTP server answering "honest" at 10.213.<x>.2:<port>, inside a namespace this fixture creates."""
    name = f"msec{secrets.token_hex(3)}"
    subnet = f"10.213.{secrets.randbelow(250) + 1}"
    host_if, ns_if = f"v{name}h", f"v{name}n"
    root = tmp_path_factory.mktemp("honest")
    (root / "index.html").write_text("honest\n")
    port = 18000 + secrets.randbelow(20000)
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{subnet}.1/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{subnet}.2/30", "dev", ns_if],
        ["ip", "-n", name, "link", "set", ns_if, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    server = None
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        command = ["nsenter", f"--net=/var/run/netns/{name}", sys.executable, "-m", "http.server"]
        command += ["--bind", f"{subnet}.2", "--directory", str(root), str(port)]
        server = Process(command, root / "server.log").start()
        wait_until(lambda: _answers(f"{subnet}.2", port), 15, what="the honest node's server")
        yield Netns(name, f"{subnet}.2", port)
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def _answers(address: str, port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=1) as response:
            return b"honest" in response.read()
    except OSError:
        return False


@dataclass
class Fleet:
    store: KVStore
    controller: Controller
    gateway: Process
    http_port: int
    honest: Netns
    consul: ConsulServer


@pytest.fixture(scope="module")
def fleet(
    consul_server: ConsulServer, honest_server: Netns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    prefix = f"t-{secrets.token_hex(4)}"
    addr = consul_server.addr
    config = ConsulConfig.from_env({}, addr=addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(config)
    workdir = tmp_path_factory.mktemp("fleet")
    http_port, https_port = free_port(), free_port()
    command = [sys.executable, "-m", "meshop", "--consul-addr", consul_server.addr, "--prefix", prefix]
    command += ["gateway", "run", "--caddy-dir", str(workdir / "gw"), "--tls", "off", "--resync", "2"]
    command += ["--http-port", str(http_port), "--https-port", str(https_port), "--metrics-addr", "127.0.0.1:0"]
    token = acl.token_for(addr, prefix, ["gateway", "run"]) or ""  # each daemon with its role's token
    # the gateway (and its Caddy) resolve names through a hosts file of the test's own (a private mount
    # namespace; the machine's /etc/hosts is shared): a name for the honest node and one for loopback
    hosts = workdir / "hosts"
    hosts.write_text(
        f"127.0.0.1 localhost\n{honest_server.address} {HONEST_NAME}\n127.0.0.1 {LOOPBACK_NAME}\n", encoding="utf-8"
    )
    mount = f'mount --bind {hosts} /etc/hosts && exec "$@"'
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh", *command]
    gateway = Process(command, workdir / "gateway.log", env={"PYTHONUNBUFFERED": "1", "CONSUL_HTTP_TOKEN": token})
    gateway.start()
    # the address rule itself is under test here (the second line behind the inventory): no inventory
    options = ControllerOptions(
        f"{prefix}-c", grace_period=30.0, lock_delay=0, check_ttl=1.0, resync=2.0, trust_node_records=True
    )
    controller = Controller(acl.config_for(addr, prefix, "controller"), options).start()
    try:
        wait_until(lambda: controller.election.is_leader and controller.loop.passes > 0, 20, what="a leader")
        yield Fleet(store, controller, gateway, http_port, honest_server, consul_server)
    finally:
        controller.stop()
        gateway.stop()
        acl.close_everywhere(prefix)


def join(store: KVStore, name: str, address: str, ingress_port: int) -> SimNode:
    """A node whose agent wrote ``address``/``ingressPort`` in its record (honest or not)."""
    from meshop.model import keys
    from meshop.model.records import Capacity, NodeRecord, dumps

    sim = SimNode(store, name).join()
    record = NodeRecord(name, address, {}, Capacity(4.0, 8 * 1024**3), version="sim", ingress_port=ingress_port)
    store.put(keys.node(name), dumps(record))
    return sim


def gateway_get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()
