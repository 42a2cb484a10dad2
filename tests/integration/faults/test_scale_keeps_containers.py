"""Changing only ``replicas`` adds or removes replicas and leaves the running ones untouched.

``replicas`` used to be part of the spec hash, so scaling 1 -> 3 replaced the replica that ran.
Real controller, agent and Docker; the service's document is changed with ``meshop apply``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshop.model import API_VERSION
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def _apply(consul: ConsulServer, prefix: str, tmp_path: Path, replicas: int) -> None:
    spec = {**SLEEPER, "replicas": replicas, "placement": {"spread": False}}
    doc = {"apiVersion": API_VERSION, "kind": "Service", "metadata": {"name": "web"}, "spec": spec}
    path = tmp_path / f"web-{replicas}.json"
    path.write_text(json.dumps(doc))
    code, _, err = invoke(consul.addr, prefix, "apply", "-f", str(path))
    assert code == 0, err


def test_scaling_1_3_1_keeps_the_original_container(
    consul_server: ConsulServer,
    prefix: str,
    controllers: Callable[..., Any],
    start_agent: AgentFactory,
    engine: Engine,
    tmp_path: Path,
) -> None:
    controllers(resync=1.0)
    start_agent(resync=1.0)
    _apply(consul_server, prefix, tmp_path, 1)
    wait_until(lambda: len(engine.running("web")) == 1, 20, what="one replica")
    (original,) = engine.running("web")

    _apply(consul_server, prefix, tmp_path, 3)
    wait_until(lambda: len(engine.containers("web")) == 3 and len(engine.running("web")) == 3, 20, what="3 replicas")
    assert original.id in {c.id for c in engine.running("web")}

    _apply(consul_server, prefix, tmp_path, 1)
    wait_until(lambda: len(engine.containers("web")) == 1, 20, what="back to one replica")
    assert [c.id for c in engine.running("web")] == [original.id]
    original.reload()
    assert original.attrs["RestartCount"] == 0 and original.status == "running"
