"""``/readyz`` of controller, agent and gateway follows Consul: 503 while it is stopped, 200 once it is
back; ``/healthz`` stays 200 throughout. A Consul of the test's own (persistent, restarted on the same
ports and data dir), so stopping it disturbs no other test. A clean stop then deregisters every
``meshop-metrics`` registration."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.monitoring.conftest import remove_node_containers
from tests.integration.monitoring.stack import COMPONENTS, Stack
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulServer]:
    server = ConsulServer(tmp_path / "consul", persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_readyz_turns_unready_without_consul_and_ready_when_it_returns(
    own_consul: ConsulServer, docker_client: Any, tmp_path: Path
) -> None:
    stack = Stack(own_consul.addr, f"t-{secrets.token_hex(4)}", tmp_path).start()
    try:
        addrs = stack.wait_registered()

        def readyz() -> dict[str, tuple[int, str]]:
            return {c: stack.get(addr, "/readyz") for c, addr in addrs.items()}

        def codes(expected: int) -> bool:
            return {code for code, _ in readyz().values()} == {expected}

        wait_until(lambda: codes(200), 30, what=f"all ready\n{stack.log_tails()}")

        own_consul.stop()
        wait_until(lambda: codes(503), 15, what=f"all unready without Consul: {readyz()}")
        for component, (_, reason) in readyz().items():
            assert "Consul" in reason, f"{component}: {reason}"
        assert {stack.get(addr, "/healthz") for addr in addrs.values()} == {(200, "ok\n")}

        own_consul.start()
        wait_until(lambda: codes(200), 40, what=f"all ready again: {readyz()}\n{stack.log_tails()}")

        assert stack.stop() == dict.fromkeys(COMPONENTS, 0)
        assert stack.registrations() == {}, "meshop-metrics deregistered on a clean stop"
    finally:
        stack.stop()
        remove_node_containers(docker_client, stack.node)
