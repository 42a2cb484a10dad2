"""Usage end to end: a real agent samples a busy busybox replica through the real Docker engine, writes
``usage/<node>`` under its own ACL token, and ``meshop top`` (read-only token) shows CPU and memory."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from typing import Any

from meshop.cli.main import run
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import UsageRecord, loads_json
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import AgentFactory, Engine, assign
from tests.support import acl
from tests.support.procs import wait_until

BUSY = {"image": TEST_IMAGE, "command": ["/bin/sh"], "args": ["-c", "while :; do :; done"]}
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def top(addr: str, prefix: str, *args: str) -> Any:
    argv = ["top", *args, "-o", "json"]
    token = acl.token_for(addr, prefix, argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run(["--consul-addr", addr, "--prefix", prefix, *(["--token", token] if token else []), *argv])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def docker_memory(name: str) -> int:
    """What `docker stats` shows as the container's memory usage, in bytes."""
    text = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    value, unit = re.match(r"\s*([0-9.]+)\s*([A-Za-z]+)", text).groups()  # type: ignore[union-attr]
    return int(float(value) * UNITS[unit])


def test_a_busy_replica_shows_cpu_and_memory_in_top(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any, prefix: str
) -> None:
    agent = start_agent(usage_interval=1.0)
    assign(store, node, "busy", {**BUSY, "resources": {"memory": "64Mi"}})
    wait_until(lambda: len(engine.running("busy")) == 1, 15, what="the busy replica running")

    def busy_row() -> dict | None:
        rows = [r for r in top(consul_server.addr, prefix, "replicas", "busy") if r["node"] == node]
        # a shell spinning: a good share of a core even on a loaded machine (a sample may catch it starved)
        return rows[0] if rows and rows[0]["cpu"] > 5.0 and rows[0]["memory"] > 0 else None

    row = wait_until(busy_row, 30, what="the busy replica's CPU and memory in meshop top")
    assert row["replica"] == 0 and row["memoryLimit"] == 64 * 2**20 and not row["stale"]
    nodes = {r["node"]: r for r in top(consul_server.addr, prefix, "nodes")}
    assert nodes[node]["cpu"] > 0 and 0 < nodes[node]["memory"] < nodes[node]["memoryTotal"]
    services = {r["service"]: r for r in top(consul_server.addr, prefix, "services")}
    assert services["busy"]["replicas"] >= 1
    # the record is the agent's own key, readable as a record; memory agrees with `docker stats`
    record = UsageRecord.from_dict(loads_json(store.get(keys.usage(node)).value))  # type: ignore[union-attr]
    assert record.node == node and record.memory_total > 0
    name = engine.running("busy")[0].name

    def agree() -> tuple[int, int] | None:
        sampler = agent.daemon.sampler
        assert sampler is not None and sampler.latest is not None
        ours = next(r.memory for r in sampler.latest.replicas if r.service == "busy")
        theirs = docker_memory(name)
        return (ours, theirs) if abs(ours - theirs) <= max(0.1 * theirs, 64 * 1024) else None

    wait_until(agree, 20, what="the sampled memory within 10 % of docker stats")
