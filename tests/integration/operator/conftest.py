"""Fixtures for the controller against a real Consul: simulated nodes, in-process and CLI controllers.

Node and controller names carry the test's prefix, because Consul's service catalog is shared by every
test of the session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.operator.sim import CliController, SimNode
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import Process, free_port, wait_until


@pytest.fixture
def sim_nodes(store: KVStore, prefix: str) -> Iterator[Callable[..., SimNode]]:
    made: list[SimNode] = []

    def make(short: str, **join: Any) -> SimNode:
        node = SimNode(store, f"{prefix}-{short}").join(**join)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


@pytest.fixture
def controllers(role_config: Callable[..., ConsulConfig], prefix: str) -> Iterator[Callable[..., Controller]]:
    """Start in-process controllers with the controller's token; options override the test defaults
    (grace 2 s, lock-delay 1 s)."""
    started: list[Controller] = []

    def start(short: str = "c1", *, clocks: dict[str, Callable[[], float]] | None = None, **options: Any) -> Controller:
        """``clocks``: ``clock`` (wall) and ``monotonic`` to inject instead of the real ones."""
        options = {"grace_period": 2.0, "lock_delay": 1, "check_ttl": 1.0, "resync": 30.0, **options}
        ctl = Controller(
            role_config("controller"),
            ControllerOptions(f"{prefix}-{short}", **{"local_cluster": True, "trust_node_records": True, **options}),
            **(clocks or {}),
        ).start()
        started.append(ctl)
        return ctl

    yield start
    for ctl in started:
        ctl.stop()


@pytest.fixture
def cli_controllers(consul_server: ConsulServer, prefix: str, tmp_path: Path) -> Iterator[Callable[..., CliController]]:
    started: list[CliController] = []
    meshop = str(Path(sys.executable).parent / "meshop")

    def start(short: str, *flags: str) -> CliController:
        port = free_port()
        ident = f"{prefix}-{short}"
        log_path = tmp_path / f"controller-{short}.log"
        args = [
            meshop,
            "--consul-addr",
            consul_server.addr,
            "--prefix",
            prefix,
            "controller",
            "run",
            "--id",
            ident,
            "--metrics-addr",
            f"127.0.0.1:{port}",
            *flags,
        ]
        token = acl.token_for(consul_server.addr, prefix, args[1:]) or ""  # args[0]: the program
        env = {"CONSUL_HTTP_TOKEN": token, "MESHOP_LOCAL_CLUSTER": "1", "MESHOP_TRUST_NODE_RECORDS": "1"}
        process = Process(args, log_path, env=env).start()
        handle = CliController(ident, process, port, log_path, args)
        started.append(handle)
        wait_until(lambda: handle.get("/healthz")[0] == 200, 20, what=f"controller {ident} to serve /healthz")
        return handle

    yield start
    for handle in started:
        handle.process.stop()
