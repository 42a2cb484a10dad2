"""How fast the node agent turns assignments into running containers, against its peers in the same run.

For 1, 10 and 50 services (one replica each, busybox httpd with an ephemeral published port), measure:

* meshop agent: from the KV write of the assignments (one transaction per 64) to every container
  running; the agent process is already up and idle, as it would be on a node;
* a loop of ``docker run -d`` (the CLI, one after the other), until the last one returns;
* ``docker-compose up -d`` (Debian's docker-compose 1.29) of a generated compose file with the same
  containers, until it returns.

Prints a table with the ratios. Starts its own Consul and agent, and removes everything it created
(containers and the compose project by their labels / names, Consul and the agent by PID).

    .venv/bin/python benchmarks/agent_converge.py [--sizes 1,10,50] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore, TxnOp  # noqa: E402
from meshop.model import ServiceSpec, keys, spec_hash  # noqa: E402
from meshop.model.records import Assignment, NodeRecord, dumps, loads_json  # noqa: E402
from tests.integration.agent.helpers import agent_process  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.procs import wait_until  # noqa: E402

IMAGE = "meshop-test/busybox:1"
COMMAND = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"


def running_count(client: docker.DockerClient, label: str) -> int:
    return len(client.api.containers(filters={"label": label, "status": "running"}, quiet=True))


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    for item in client.api.containers(all=True, filters={"label": label}, quiet=True):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(item["Id"], force=True, v=True)


def wait_running(client: docker.DockerClient, label: str, count: int, timeout: float = 300.0) -> None:
    wait_until(lambda: running_count(client, label) >= count, timeout, interval=0.05, what=f"{count} running")


class AgentRun:
    """One ``meshop agent run`` process for one benchmark node, on the benchmark's Consul."""

    def __init__(self, consul: ConsulServer, prefix: str, node: str, workdir: Path) -> None:
        self.store = KVStore(ConsulConfig.from_env({}, addr=consul.addr, prefix=prefix, timeout=10))
        self.node = node
        self.process = agent_process(
            node, consul.addr, prefix, workdir, "--log-level", "warning", log_name=f"agent-{node}.log"
        )

    def start(self) -> AgentRun:
        self.process.start()
        entry = wait_until(lambda: self.store.get(keys.node(self.node)), 30, what="the agent's node record")
        record = NodeRecord.from_dict(loads_json(entry.value))  # type: ignore[union-attr]

        def ready() -> bool:
            with urllib.request.urlopen(f"http://{record.metrics_addr}/readyz", timeout=2) as response:
                return response.status == 200

        wait_until(ready, 30, what="the agent to be ready")
        return self

    def assign(self, count: int, tag: str) -> None:
        ops = []
        for i in range(count):
            spec = ServiceSpec.from_dict(
                {
                    "image": IMAGE,
                    "command": COMMAND[:1],
                    "args": COMMAND[1:],
                    "ports": [{"name": "http", "container": 8080}],
                    "env": [{"name": "RUN", "value": tag}],
                }
            )
            assignment = Assignment(f"svc{i}", self.node, 1, 1, spec_hash(spec), spec.to_dict())
            ops.append(TxnOp.set(keys.assignment(self.node, f"svc{i}"), dumps(assignment)))
        for start in range(0, len(ops), 64):
            self.store.transact(ops[start : start + 64])

    def stop(self) -> None:
        self.process.stop()


def bench_agent(client: docker.DockerClient, consul: ConsulServer, workdir: Path, count: int, run_id: str) -> float:
    node = f"bench-{run_id}-{count}-{secrets.token_hex(2)}"
    agent = AgentRun(consul, f"bench-{run_id}", node, workdir).start()
    label = f"meshop.node={node}"
    try:
        started = time.perf_counter()
        agent.assign(count, run_id)
        wait_running(client, label, count)
        return time.perf_counter() - started
    finally:
        agent.stop()
        remove_labelled(client, label)


def bench_docker_run(client: docker.DockerClient, count: int, run_id: str) -> float:
    label = f"meshop-bench-run={run_id}-{count}"
    try:
        started = time.perf_counter()
        for i in range(count):
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    f"bench-run-{run_id}-{count}-{i}",
                    "--label",
                    label,
                    "-p",
                    "127.0.0.1::8080",
                    "--restart",
                    "unless-stopped",
                    "-e",
                    f"RUN={run_id}",
                    IMAGE,
                    *COMMAND,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        wait_running(client, label, count)
        return time.perf_counter() - started
    finally:
        remove_labelled(client, label)


def bench_compose(client: docker.DockerClient, workdir: Path, count: int, run_id: str) -> float:
    project = f"meshopbench{run_id}n{count}"
    compose_file = workdir / f"compose-{count}.yml"
    services = {
        f"svc{i}": {
            "image": IMAGE,
            "command": COMMAND,
            "ports": ["127.0.0.1::8080"],
            "environment": {"RUN": run_id},
            "restart": "unless-stopped",
        }
        for i in range(count)
    }
    compose_file.write_text(json.dumps({"version": "3.7", "services": services}, indent=1))
    base = [COMPOSE, "-p", project, "-f", str(compose_file)]
    try:
        started = time.perf_counter()
        subprocess.run([*base, "up", "-d"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_running(client, f"com.docker.compose.project={project}", count)
        return time.perf_counter() - started
    finally:
        subprocess.run([*base, "down", "-t", "0", "-v"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remove_labelled(client, f"com.docker.compose.project={project}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1,10,50", help="service counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and method (the median is shown)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    client = docker.from_env(timeout=120)
    client.images.get(IMAGE)  # fails early when `make setup` has not built it
    run_id = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="meshop-bench-"))
    consul = ConsulServer(workdir / "consul").start()
    rows = []
    try:
        for count in sizes:
            methods: dict[str, Callable[[], float]] = {
                "agent": lambda count=count: bench_agent(client, consul, workdir, count, run_id),
                "docker run": lambda count=count: bench_docker_run(client, count, run_id),
                "compose": lambda count=count: bench_compose(client, workdir, count, run_id),
            }
            times: dict[str, list[float]] = {name: [] for name in methods}
            for _ in range(args.repeat):
                for name, method in methods.items():  # interleaved, so drift of the machine hits all alike
                    times[name].append(method())
            medians = {name: statistics.median(values) for name, values in times.items()}
            rows.append((count, medians))
            print(f"  {count:>3} services: " + ", ".join(f"{k} {v:.2f}s" for k, v in medians.items()), flush=True)
    finally:
        consul.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        client.close()
    print()
    print("services | meshop agent | docker run loop | docker-compose up -d | agent/run | agent/compose")
    print("-------- | ------------ | --------------- | -------------------- | --------- | -------------")
    for count, m in rows:
        print(
            f"{count:>8} | {m['agent']:>11.2f}s | {m['docker run']:>14.2f}s | {m['compose']:>19.2f}s | "
            f"{m['agent'] / m['docker run']:>9.2f} | {m['agent'] / m['compose']:>13.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
