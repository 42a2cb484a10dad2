"""status / get / describe against a real Consul, ``meshop controller run`` and ``meshop agent run`` on Docker.

One cluster per module (its own KV prefix and node name, so it shares Consul and Docker with anything
else safely); each test adds what it needs and removes it again. Teardown removes exactly the
containers and volumes labelled with the module's node.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.conftest import TEST_IMAGE
from tests.integration.cli.conftest import invoke
from tests.integration.operator.sim import SimNode, service_doc
from tests.integration.routing.helpers import cleanup_node
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, wait_until


@dataclass
class Cluster:
    consul: ConsulServer
    prefix: str
    node: str
    store: KVStore
    agent: Process
    controller: Process

    def meshop(self, *args: str) -> tuple[int, str, str]:
        return invoke(self.consul.addr, self.prefix, *args)

    def status_json(self) -> dict[str, Any]:
        code, out, err = self.meshop("status", "-o", "json")
        assert code == 0, err
        return json.loads(out)

    def service(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.status_json()["services"] if s["name"] == name), None)

    def put(self, name: str, **spec: Any) -> None:
        self.store.put(keys.desired_service(name), service_doc(name, **spec))

    def logs(self) -> str:
        return f"controller:\n{self.controller.log_tail()}\nagent:\n{self.agent.log_tail()}"


WEB = {
    "image": TEST_IMAGE,
    "command": ["/bin/httpd"],
    "args": ["-f", "-p", "80", "-h", "/www"],
    "replicas": 2,
    "placement": {"spread": False},
    "health": {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
}


@pytest.fixture(scope="module")
def cluster(
    consul_server: ConsulServer, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cli-cluster")
    prefix, node = f"t-{secrets.token_hex(4)}", f"cli{secrets.token_hex(3)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(config)
    controller = meshop_process(
        consul_server.addr,
        prefix,
        ["controller", "run", "--id", f"{prefix}-c", "--metrics-addr", "127.0.0.1:0", "--grace-period", "2"],
        tmp / "controller.log",
    ).start()
    # the agent as its unit runs it: settings from --config (address, labels, state), flags over the file;
    # --node as a flag too: tests/support/acl.py reads it from the command line to make the agent's token
    agent_yaml = tmp / "agent.yaml"
    agent_yaml.write_text(
        f"node: other\nadvertise_addr: 127.0.0.1\nlabels: {{zone: test}}\nstate_dir: {tmp / 'agent'}\n"
        "metrics_addr: 127.0.0.1:9464\nstop_grace: 30\n"
    )
    agent_args = ["agent", "run", "--config", str(agent_yaml), "--node", node, "--metrics-addr", "127.0.0.1:0"]
    agent_args += ["--stop-grace", "1"]
    agent = meshop_process(consul_server.addr, prefix, agent_args, tmp / "agent.log").start()
    c = Cluster(consul_server, prefix, node, store, agent, controller)
    try:
        c.put("web", route={"host": f"web.{prefix}.test", "port": "http"}, **WEB)
        wait_until(lambda: c.meshop("status", "--check")[0] == 0, 60, what=f"web to be Ready\n{c.logs()}")
        yield c
    finally:
        agent.stop()
        controller.stop()
        cleanup_node(docker_client, store, node)
        acl.close(consul_server.addr, prefix)


def lines_of(out: str, section: str) -> list[list[str]]:
    """The rows of one table (SERVICES or NODES) of `meshop status`, split on whitespace."""
    block = out.split(f"\n{section}\n", 1)[1].split("\n\n", 1)[0]
    return [line.split() for line in block.splitlines()]


def test_status_shows_ready_services_and_nodes_and_check_passes(cluster: Cluster) -> None:
    code, out, err = cluster.meshop("status")
    assert (code, err) == (0, "")
    assert out.startswith(f"Controller: {cluster.prefix}-c leads (for ")
    services = lines_of(out, "SERVICES")
    assert services[0] == ["NAME", "READY", "NODES", "IMAGE", "ROUTE", "HEALTH", "AGE", "MESSAGE"]
    assert services[1][:6] == ["web", "2/2", f"{cluster.node}=2", TEST_IMAGE, f"web.{cluster.prefix}.test/", "Healthy"]
    assert len(services[1]) == 7  # AGE, and no message when Healthy
    nodes = lines_of(out, "NODES")
    assert nodes[0] == ["NAME", "ADDRESS", "STATUS", "SERVICES", "LAST", "SEEN", "LABELS", "MESSAGE"]
    assert nodes[1] == [cluster.node, "127.0.0.1", "Ready", "1", "now", "zone=test"]

    data = cluster.status_json()
    assert data["ready"] is True
    assert data["controller"]["leader"]["id"] == f"{cluster.prefix}-c"
    (web,) = data["services"]
    assert {k: web[k] for k in ("name", "health", "converging", "ready", "desired", "nodes", "reason")} == {
        "name": "web",
        "health": "Healthy",
        "converging": False,
        "ready": 2,
        "desired": 2,
        "nodes": {cluster.node: 2},
        "reason": "",
    }
    assert web["generation"] == web["observedGeneration"] > 0
    (node,) = data["nodes"]
    assert {k: node[k] for k in ("name", "status", "ready", "services", "labels")} == {
        "name": cluster.node,
        "status": "Ready",
        "ready": True,
        "services": ["web"],
        "labels": {"zone": "test"},
    }
    code, out, _ = cluster.meshop("status", "-o", "yaml")
    assert yaml.safe_load(out)["services"][0]["health"] == "Healthy"
    assert cluster.meshop("status", "--check")[0] == 0


def test_status_tells_converging_from_failed_and_check_fails(cluster: Cluster) -> None:
    store = cluster.store
    store.put(keys.desired_service("broken"), service_doc("broken", ports=[{"name": "http", "container": 70000}]))
    cluster.put("nowhere", image=TEST_IMAGE, placement={"nodeSelector": {"zone": "mars"}})
    cluster.put("nopull", image="127.0.0.1:1/meshop-test/missing:1")
    slow_start = ["-c", "sleep 3; exec httpd -f -p 80 -h /www"]
    health = {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"}
    cluster.put("slow", image=TEST_IMAGE, command=["/bin/sh"], args=slow_start, health=health)
    try:
        wait_until(
            lambda: (cluster.service("slow") or {}).get("health") == "Progressing", 20, what="slow to be Progressing"
        )
        assert cluster.service("slow")["converging"] is True  # type: ignore[index]

        def failed() -> dict[str, dict[str, Any]] | None:
            rows = {s["name"]: s for s in cluster.status_json()["services"]}
            wanted = ("broken", "nowhere", "nopull")
            return rows if all(rows.get(n, {}).get("health") == "Failed" for n in wanted) else None

        rows = wait_until(failed, 30, what=f"three failed services\n{cluster.logs()}")
        assert rows["broken"]["reason"] == "Invalid"  # type: ignore[index]
        assert "spec.ports[0].container: 70000 is greater than the maximum of 65535" in rows["broken"]["message"]  # type: ignore[index]
        assert rows["nowhere"]["reason"] == "NoMatchingNode"  # type: ignore[index]
        assert rows["nopull"]["reason"] == "ImagePullFailed"  # type: ignore[index]
        assert not any(rows[n]["converging"] for n in ("broken", "nowhere", "nopull"))  # type: ignore[index]

        code, out, _ = cluster.meshop("status", "--check")
        assert code == 1
        table = {row[0]: row for row in lines_of(out, "SERVICES")}
        assert [table[n][5] for n in ("broken", "nowhere", "nopull")] == ["Failed"] * 3
        assert "Invalid: spec.ports[0].container: 70000 is greater than the maximum of 65535" in out
        assert "NoMatchingNode: 0/1 replicas ready; 0/1 replicas placed; 0/1 nodes fit" in out
        assert "ImagePullFailed: " in out
        wait_until(
            lambda: (cluster.service("slow") or {}).get("health") == "Healthy", 30, what="slow to become Healthy"
        )
    finally:
        for name in ("broken", "nowhere", "nopull", "slow"):
            store.delete(keys.desired_service(name))
    wait_until(lambda: cluster.meshop("status", "--check")[0] == 0, 30, what="the failed services to go")


def test_describe_service(cluster: Cluster) -> None:
    code, out, err = cluster.meshop("describe", "service", "web")
    assert (code, err) == (0, "")
    head = dict(line.split(":", 1) for line in out.split("\n\n", 1)[0].splitlines())
    assert {k: v.strip() for k, v in head.items() if k in ("Name", "Health", "Replicas", "Image", "Route")} == {
        "Name": "web",
        "Health": "Healthy",
        "Replicas": "2 desired, 2 ready",
        "Image": TEST_IMAGE,
        "Route": f"web.{cluster.prefix}.test/",
    }
    assert "Spec:\n  args:\n  - -f\n" in out
    conditions = out.split("Conditions:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[:3] for line in conditions] == [
        ["TYPE", "STATUS", "REASON"],
        ["Valid", "True", "Valid"],
        ["Scheduled", "True", "Scheduled"],
        ["Ready", "True", "Ready"],
        ["Degraded", "False", "-"],
    ]
    assert f"2 replica(s) on {cluster.node}=2" in out
    placement = out.split("Placement:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert placement[1].split()[:4] == [cluster.node, "2", "2", "Ready"]
    containers = out.split("Containers:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [row.split()[1] for row in containers[1:]] == ["0", "1"]
    assert all(row.split()[4:6] == ["running", "passing"] for row in containers[1:])
    events = out.split("Events:\n", 1)[1].splitlines()
    # the agent's own events (Created, ...) widen the columns: compare words, not padding
    wanted = f"Scheduled controller placed 2 replica(s) on {cluster.node}=2"
    assert any(wanted in " ".join(line.split()) for line in events)

    code, out, _ = cluster.meshop("describe", "service", "web", "-o", "json")
    data = json.loads(out)
    assert data["assignments"][cluster.node]["replicas"] == 2
    assert len(data["observed"][cluster.node]["containers"]) == 2
    assert data["document"]["spec"]["replicas"] == 2
    assert [c["type"] for c in data["status"]["conditions"]] == ["Valid", "Scheduled", "Ready", "Degraded"]

    code, out, err = cluster.meshop("describe", "service", "nope")
    assert (code, out) == (1, "")
    assert err == f"Error: service/nope not found: no {cluster.prefix}/desired/services/nope and no status\n"


def test_get_services_and_nodes(cluster: Cluster) -> None:
    code, out, _ = cluster.meshop("get", "services")
    assert code == 0
    assert [line.split()[:6] for line in out.splitlines()] == [
        ["NAME", "READY", "NODES", "IMAGE", "ROUTE", "HEALTH"],
        ["web", "2/2", f"{cluster.node}=2", TEST_IMAGE, f"web.{cluster.prefix}.test/", "Healthy"],
    ]
    code, out, _ = cluster.meshop("get", "svc", "web", "-o", "json")
    web = json.loads(out)  # the document itself (apply -f - takes it back), the server's view under status
    assert (web["metadata"]["name"], web["status"]["summary"]["health"], web["spec"]["replicas"]) == (
        "web",
        "Healthy",
        2,
    )
    assert web["status"]["readyReplicas"] == 2

    code, out, _ = cluster.meshop("get", "nodes")
    assert [line.split()[:5] for line in out.splitlines()][1] == [cluster.node, "127.0.0.1", "Ready", "1", "now"]
    code, out, _ = cluster.meshop("get", "node", cluster.node, "-o", "yaml")
    node = yaml.safe_load(out)
    assert (node["kind"], node["metadata"]["name"]) == ("Node", cluster.node)
    assert (node["status"]["record"]["address"], node["status"]["state"], node["status"]["agentHealth"]) == (
        "127.0.0.1",
        "Ready",
        "passing",
    )

    assert cluster.meshop("get", "services", "nope")[::2] == (1, "Error: service/nope not found\n")
    code, _, err = cluster.meshop("get", "nodes", "nope")
    assert code == 1 and "node/nope not found" in err


def test_a_lost_node_is_not_ready_with_how_long_and_whether_its_work_moved(cluster: Cluster) -> None:
    sim = SimNode(cluster.store, f"{cluster.prefix}-sim", ttl=1.0).join(labels={"zone": "sim"})
    try:
        wait_until(
            lambda: [n["status"] for n in cluster.status_json()["nodes"] if n["name"] == sim.name] == ["Ready"], 10
        )
        sim.stop_agent()

        def lost() -> dict[str, Any] | None:
            node = next(n for n in cluster.status_json()["nodes"] if n["name"] == sim.name)
            return node if "placed elsewhere" in node["message"] else None

        node = wait_until(lost, 20, what="the controller to call the node NotReady")
        assert node["status"] == "NotReady" and node["ready"] is False  # type: ignore[index]
        assert node["message"].startswith("agent check critical for ")  # type: ignore[index]
        assert node["lastSeen"] is not None  # type: ignore[index]
        code, out, _ = cluster.meshop("status", "--check")
        assert code == 1
        row = next(r for r in lines_of(out, "NODES") if r[0] == sim.name)
        assert row[2] == "NotReady" and row[4].endswith("s")  # LAST SEEN: an age
    finally:
        sim.close()
        cluster.store.delete(keys.node(sim.name))
    wait_until(lambda: cluster.meshop("status", "--check")[0] == 0, 20, what="the sim node to be forgotten")


def test_watch_redraws_on_every_change_and_only_then(cluster: Cluster, tmp_path: Path) -> None:
    watch = meshop_process(cluster.consul.addr, cluster.prefix, ["status", "--watch", "-o", "json"], tmp_path / "w")

    def frames() -> list[dict[str, Any]]:
        text = (tmp_path / "w").read_text() if (tmp_path / "w").exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    watch.start()
    try:
        wait_until(lambda: len(frames()) == 1, 20, what="the first frame")
        assert cluster.meshop("nodes", "cordon", cluster.node)[0] == 0
        wait_until(lambda: frames()[-1]["nodes"][0]["status"] == "Cordoned", 5, what="a redraw on cordon")
        assert cluster.meshop("nodes", "uncordon", cluster.node)[0] == 0
        wait_until(lambda: frames()[-1]["nodes"][0]["status"] == "Ready", 5, what="a redraw on uncordon")
        assert len(frames()) == 3  # unchanged data is never redrawn
        assert watch.alive()
    finally:
        watch.stop()


def test_shell_completion_and_service_names(cluster: Cluster) -> None:
    meshop = str(Path(sys.executable).parent / "meshop")
    env = {"_MESHOP_COMPLETE": "bash_source", "PATH": str(Path(sys.executable).parent)}
    script = subprocess.run([meshop], env=env, capture_output=True, text=True, timeout=30)
    assert script.returncode == 0 and "_meshop_completion()" in script.stdout
    env = {
        "_MESHOP_COMPLETE": "bash_complete",
        "COMP_WORDS": "meshop describe service w",
        "COMP_CWORD": "3",
        "CONSUL_HTTP_ADDR": cluster.consul.addr,
        "MESHOP_PREFIX": cluster.prefix,
        "CONSUL_HTTP_TOKEN": acl.token_for(cluster.consul.addr, cluster.prefix, ["describe"]) or "",
    }
    done = subprocess.run([meshop], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines() == ["plain,web"]
