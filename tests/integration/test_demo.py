"""``scripts/demo.sh`` (what ``make demo`` / ``make demo-down`` run), isolated: its own state dir, ports and node.

up -> every example Ready and answering through the gateway's Caddy and the node's Caddy behind it;
up again reuses every process;
down leaves no process, container or volume behind, and a second down is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.errors import ConsulAccessDenied
from meshop.model import keys
from tests.support import http
from tests.support.procs import REPO, free_port

PROCESSES = ("consul", "acl-sync", "controller", "fence", "agent", "gateway")


def free_range(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (Consul's HTTP, serf LAN/WAN, server)."""
    for _ in range(50):
        first = free_port()
        if first + count < 65536 and all(_free(first + i) for i in range(1, count)):
            return first
    raise RuntimeError("no range of free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by PID 1 is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Demo:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "demo"
        self.node = f"demo{secrets.token_hex(3)}"
        self.https_port = free_port()
        self.ingress_port = free_port()
        self.consul_port = free_range(4)
        self.env = {
            **os.environ,
            "MESHOP_DEMO_DIR": str(self.dir),
            "MESHOP_DEMO_CONSUL_PORT": str(self.consul_port),
            "MESHOP_DEMO_HTTPS_PORT": str(self.https_port),
            "MESHOP_DEMO_HTTP_PORT": str(free_port()),
            "MESHOP_DEMO_INGRESS_PORT": str(self.ingress_port),
            "MESHOP_DEMO_NODE": self.node,
            "MESHOP_DEMO_TIMEOUT": "60",
        }

    def run(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "demo.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )

    def pids(self) -> dict[str, int]:
        files = {name: self.dir / f"{name}.pid" for name in PROCESSES}
        files["caddy"] = self.dir / "caddy" / "caddy.pid"
        files["node-caddy"] = self.dir / "node-caddy" / "caddy.pid"
        return {name: int(f.read_text()) for name, f in files.items() if f.exists()}

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        ca = self.dir / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        return http.get(self.https_port, host, path, tls_ca=str(ca), timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.dir.glob("*.log"))


@pytest.fixture
def demo(tmp_path: Path, docker_client: Any) -> Iterator[Demo]:
    d = Demo(tmp_path)
    try:
        yield d
    finally:
        d.run("down")
        for container in docker_client.containers.list(all=True, filters={"label": [f"meshop.node={d.node}"]}):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)


def table(out: str, section: str) -> dict[str, list[str]]:
    block = out.split(f"\n{section}\n", 1)[1].split("\n\n", 1)[0]
    return {row.split()[0]: row.split() for row in block.splitlines()[1:]}


def test_demo_up_serves_every_example_through_caddy_and_down_leaves_nothing(demo: Demo, docker_client: Any) -> None:
    up = demo.run("up")
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{demo.logs()}"
    services = table(up.stdout, "SERVICES")
    assert services["hello"][1:3] == ["2/2", f"{demo.node}=2"] and services["hello"][5] == "Healthy"
    assert services["whoami"][1:3] == ["1/1", demo.node] and services["whoami"][5] == "Healthy"
    assert table(up.stdout, "NODES")[demo.node][2] == "Ready"
    assert "\nmeshop test page\n" in up.stdout  # the curl through Caddy, printed by the script
    assert "HTTP_X_FORWARDED_PROTO=https" in up.stdout

    assert demo.get("hello.localhost") == (200, "meshop test page\n")
    status, body = demo.get("whoami.localhost", "/cgi-bin/env")
    assert status == 200 and "HTTP_HOST=whoami.localhost" in body
    pids = demo.pids()
    assert set(pids) == {*PROCESSES, "caddy", "node-caddy"} and all(alive(p) for p in pids.values())
    # the gateway's route goes to the node Caddy, which answers for the route's host by itself too
    # the demo's Consul runs with ACLs, default deny: anonymous reads are refused, the daemons have role tokens
    addr = f"127.0.0.1:{demo.consul_port}"
    with pytest.raises(ConsulAccessDenied):
        KVStore(ConsulConfig.from_env({}, addr=addr)).get(keys.route("hello.localhost"))
    assert {"controller", "agent", "gateway", "operator", "readonly"} <= {p.stem for p in demo.dir.glob("*.token")}
    assert all(p.stat().st_mode & 0o077 == 0 for p in demo.dir.glob("*.token"))
    readonly = (demo.dir / "readonly.token").read_text().strip()
    route = KVStore(ConsulConfig.from_env({}, addr=addr, token=readonly)).get(keys.route("hello.localhost"))
    assert route is not None
    upstreams = {(u["address"], u["port"]) for u in json.loads(route.value)["upstreams"]}
    assert upstreams == {("127.0.0.1", demo.ingress_port)}
    assert http.get(demo.ingress_port, "hello.localhost", "/", timeout=5) == (200, "meshop test page\n")
    labelled = {"label": [f"meshop.node={demo.node}"]}
    assert len(docker_client.containers.list(filters=labelled)) == 3

    again = demo.run("up")  # re-runnable: everything is reused, nothing re-applied
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 6
    assert "service/hello unchanged" in again.stdout
    assert demo.pids() == pids

    down = demo.run("down")
    assert down.returncode == 0, down.stderr
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert docker_client.containers.list(all=True, filters=labelled) == []
    assert docker_client.volumes.list(filters=labelled) == []
    assert not any(demo.dir.glob("*.pid"))
    assert demo.run("down").returncode == 0  # idempotent
