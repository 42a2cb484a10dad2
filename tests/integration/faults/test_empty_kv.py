"""Consul coming back empty (a restarted dev Consul, a wiped prefix) must not cost a container.

The agent cannot tell "every assignment was deliberately removed" from "this is not the KV I talked
to" by the assignments alone: it remembers its node's fence (``fences/<node>``) and treats a missing
or foreign fence like an unreachable Consul: it keeps every container, says why, and waits for the
operator (``meshop cluster adopt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import API_VERSION
from meshop.model.records import NodeRecord, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, http_status, observed, run_passes
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def _config(server: ConsulServer) -> ConsulConfig:
    return ConsulConfig.from_env({}, addr=server.addr, prefix="fault", timeout=2.0)


def _running_ids(engine: Engine) -> set[str]:
    return {c.id for c in engine.running()}


@pytest.mark.parametrize("wipe", ["restart-empty", "delete-recurse"])
def test_empty_kv_keeps_every_container(
    wipe: str, own_consul: ConsulServer, start_agent: AgentFactory, engine: Engine, node: str
) -> None:
    config = _config(own_consul)
    store = KVStore(config)
    agent = start_agent(config=config, resync=0.5)
    assign(store, node, "web", SLEEPER, replicas=2)
    assign(store, node, "db", SLEEPER)
    wait_until(lambda: len(engine.running()) == 3, 15, what="three containers")
    before = _running_ids(engine)

    if wipe == "restart-empty":
        own_consul.stop()
        own_consul.start()  # -dev: every key is gone
    else:
        store.delete_tree("")  # `consul kv delete -recurse meshop/`
    run_passes(agent, 5, timeout=30)
    assert _running_ids(engine) == before, "the agent removed containers after Consul came back empty"
    wait_until(lambda: "cluster adopt" in _problem(store, node), 10, what="the node record to say why")
    assert http_status(f"{agent.status_url}/readyz") == 503
    assert _running_ids(engine) == before


def _problem(store: KVStore, node: str) -> str:
    entry = store.get(f"nodes/{node}")
    return NodeRecord.from_dict(loads_json(entry.value)).problem if entry else ""


def test_recovery_export_import_adopt_keeps_the_same_containers(
    own_consul: ConsulServer, start_agent: AgentFactory, engine: Engine, node: str, tmp_path: Path
) -> None:
    """The documented way back: export before, import after, adopt; the containers are the very same."""
    config = _config(own_consul)
    store = KVStore(config)
    ctl = Controller(config, ControllerOptions(f"c-{node}", lock_delay=0, check_ttl=1.0, resync=1.0)).start()
    try:
        start_agent(config=config, resync=0.5)
        doc = {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {**SLEEPER, "replicas": 2, "placement": {"spread": False}},
        }
        (tmp_path / "web.yaml").write_text(json.dumps(doc))
        assert invoke(own_consul.addr, "fault", "apply", "-f", str(tmp_path / "web.yaml"))[0] == 0
        wait_until(lambda: len(engine.running("web")) == 2, 20, what="two replicas")
        code, backup, _ = invoke(own_consul.addr, "fault", "export")
        assert code == 0
        (tmp_path / "backup.yaml").write_text(backup)
        before = _running_ids(engine)

        own_consul.stop()
        own_consul.start()  # empty
        wait_until(lambda: "cluster adopt" in _problem(store, node), 30, what="the agent to report the lost KV")
        code, out, _ = invoke(own_consul.addr, "fault", "status")
        assert "Held" in out and "cluster adopt" in out
        assert invoke(own_consul.addr, "fault", "import", "-f", str(tmp_path / "backup.yaml"))[:2] == (
            0,
            "service/web created\n",
        )
        wait_until(lambda: store.get(f"assignments/{node}/web") is not None, 30, what="the controller to place web")
        assert _running_ids(engine) == before
        code, out, _ = invoke(own_consul.addr, "fault", "cluster", "adopt", node)
        assert (code, out) == (0, f"node/{node} adopted\n")
        wait_until(lambda: _problem(store, node) == "", 15, what="the agent to trust the KV again")
        wait_until(lambda: (o := observed(store, node, "web")) is not None and o.ready == 2, 15, what="observed")
        assert _running_ids(engine) == before  # the very same containers: same spec, same hash
        assert invoke(own_consul.addr, "fault", "export")[1] == backup  # round trip
    finally:
        ctl.stop()
