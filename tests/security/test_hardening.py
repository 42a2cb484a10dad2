"""Container hardening: what a hostile process inside a replica can do to the node is bounded.

Attacks from inside a container: gain privileges through a setuid binary or file capabilities (stopped
by no-new-privileges, on by default), fork until the node runs out of PIDs (stopped by the pids limit,
4096 by default), write to its own image to persist (stopped by a read-only root filesystem), use
capabilities it does not need (dropped). Each container is created by a real agent on the real engine
and inspected; the hostile process really runs.
"""

from __future__ import annotations

from typing import Any

from meshop.consul.store import KVStore
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until

HOSTILE = (
    "echo uid=$(/bin/busybox id -u); "
    "echo pwned > /pwned 2>/dev/null && echo WROTE-ROOT-FS; "
    "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; "
    "(i=0; while [ $i -lt 200 ]; do sleep 600 & i=$((i+1)); done) 2>/dev/null; "  # then a fork bomb
    "echo done; exec sleep 3600"
)


def started(engine: Engine, service: str) -> Any:
    return wait_until(lambda: (c := engine.running(service)) and c[0], 15, what=f"{service} running")


def test_a_default_container_has_no_new_privileges_and_a_pids_limit(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    start_agent()
    assign(store, node, "plain", SLEEPER)
    container = started(engine, "plain")
    host = container.attrs["HostConfig"]
    assert "no-new-privileges:true" in (host.get("SecurityOpt") or [])
    assert host["PidsLimit"] == 4096
    # an exec into a container that has only just started can come back empty under load: read until it answers
    status = wait_until(
        lambda: (
            (out := container.exec_run(["/bin/cat", "/proc/1/status"]).output.decode()) and "NoNewPrivs" in out and out
        ),
        10,
        what="/proc/1/status from inside the container",
    )
    assert "NoNewPrivs:\t1" in status


def test_hardening_knobs_reach_the_container_and_hold_against_a_hostile_process(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    start_agent()
    spec = {
        **SLEEPER,
        "command": ["/bin/sh"],
        "args": ["-c", HOSTILE],
        "resources": {"memory": "64Mi", "pids": 32},
        "security": {
            "user": "1000:1000",
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
    }
    assign(store, node, "hostile", spec)
    container = started(engine, "hostile")
    wait_until(lambda: b"done" in container.logs(), 15, what="the hostile script to finish its attempts")
    host, config = container.attrs["HostConfig"], container.attrs["Config"]
    assert config["User"] == "1000:1000"
    assert host["ReadonlyRootfs"] is True
    assert [c.removeprefix("CAP_") for c in host["CapDrop"]] == ["ALL"]
    assert [c.removeprefix("CAP_") for c in host["CapAdd"]] == ["NET_BIND_SERVICE"]
    assert host["PidsLimit"] == 32 and host["Memory"] == host["MemorySwap"] == 64 * 2**20
    logs = container.logs().decode()
    assert "uid=1000" in logs and "WROTE-ROOT-FS" not in logs
    assert "NoNewPrivs:\t1" in logs and "CapEff:\t0000000000000000" in logs
    container.reload()
    assert len(container.top()["Processes"]) <= 32  # 200 forks asked for, the limit held
    record = wait_until(lambda: (o := observed(store, node, "hostile")) and o.ready == 1 and o, 10, what="ready")
    assert record.error == ""
