"""Crash loops must not look Healthy (issue 12, item 6), against a real controller, agent and Docker.

A container exiting with code 3 in a loop used to show ``1/1 Healthy`` (Docker restarts it, and for a
moment it is ``running``); ``restart: "no"`` plus an exit showed Healthy too; a service without a
health check was later said to fail "their health check".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import API_VERSION
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import AgentFactory, Engine, http_spec, observed, passing
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

CRASHER = {"image": TEST_IMAGE, "command": ["/bin/sh"], "args": ["-c", "sleep 0.3; exit 3"]}


def _apply(consul: ConsulServer, prefix: str, tmp_path: Path, name: str, spec: dict[str, Any]) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps({"apiVersion": API_VERSION, "kind": "Service", "metadata": {"name": name}, "spec": spec})
    )
    code, _, err = invoke(consul.addr, prefix, "apply", "-f", str(path))
    assert code == 0, err


def _row(consul: ConsulServer, prefix: str, name: str) -> dict[str, Any]:
    code, out, err = invoke(consul.addr, prefix, "status", "-o", "json")
    assert code == 0, err
    rows = json.loads(out)["services"]
    return next((r for r in rows if r["name"] == name), {})


def _first_die(docker_client: Any, node: str) -> tuple[list[float], Callable[[], None]]:
    dies: list[float] = []
    events = docker_client.events(decode=True, filters={"label": [f"meshop.node={node}"], "event": "die"})

    def follow() -> None:
        try:
            for _ in events:
                dies.append(time.monotonic())
        except Exception:  # noqa: BLE001 - closed at the end of the test
            return

    threading.Thread(target=follow, daemon=True).start()
    return dies, events.close


def test_crash_loop_shows_in_status_within_5s_with_exit_code_and_restarts(
    consul_server: ConsulServer,
    prefix: str,
    store: KVStore,
    controllers: Callable[..., Any],
    start_agent: AgentFactory,
    node: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    controllers(resync=1.0)
    start_agent()
    dies, close = _first_die(docker_client, node)
    try:
        _apply(consul_server, prefix, tmp_path, "crasher", CRASHER)
        wait_until(lambda: dies, 20, what="the first crash")
        first = dies[0]
        row = wait_until(
            lambda: (r := _row(consul_server, prefix, "crasher")) and r.get("reason") == "CrashLoopBackOff" and r,
            5,
            what="CrashLoopBackOff in meshop status within 5 s of the first crash",
        )
        visible_after = time.monotonic() - first
    finally:
        close()
    assert row["health"] != "Healthy" and row["ready"] == 0
    assert "exited with code 3" in row["message"] and "health check" not in row["message"]
    record = observed(store, node, "crasher")
    assert record is not None and record.ready == 0
    (container,) = record.containers
    assert container.phase in ("CrashLoopBackOff", "Failed") and container.exit_code == 3
    # it never turns Healthy while it keeps crashing
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert _row(consul_server, prefix, "crasher").get("health") != "Healthy"
        time.sleep(0.5)
    record = observed(store, node, "crasher")
    assert record is not None and record.containers[0].restart_count >= 2
    print(f"crash loop visible in meshop status {visible_after:.1f}s after the first crash")


def test_exit_with_restart_no_is_failed_never_healthy(
    consul_server: ConsulServer,
    prefix: str,
    store: KVStore,
    controllers: Callable[..., Any],
    start_agent: AgentFactory,
    node: str,
    tmp_path: Path,
) -> None:
    controllers(resync=1.0)
    start_agent()
    _apply(consul_server, prefix, tmp_path, "oneshot", {**CRASHER, "restart": "no"})
    row = wait_until(
        lambda: (r := _row(consul_server, prefix, "oneshot")) and r.get("reason") == "Failed" and r,
        15,
        what="Failed in meshop status",
    )
    assert row["health"] == "Failed" and "exited with code 3" in row["message"]
    assert "health check" not in row["message"]


def test_a_replica_is_ready_only_once_its_consul_check_passes(
    consul_server: ConsulServer, store: KVStore, start_agent: AgentFactory, engine: Engine, node: str
) -> None:
    """Observed ``ready`` never runs ahead of the replica's check in Consul."""
    from tests.integration.agent.helpers import assign

    start_agent()
    assign(store, node, "web", http_spec(health={"http": {"path": "/", "port": "http"}, "interval": "2s"}))
    wait_until(lambda: (o := observed(store, node, "web")) is not None and o.ready == 1, 20, what="ready")
    assert passing(consul_server.addr, "web", node), "observed said Ready before Consul's check passed"
