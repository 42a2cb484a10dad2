"""A small real cluster for the end-to-end routing tests, shared by one module to keep them fast:
an in-process controller, two ``meshop agent run --caddy-dir`` processes (two nodes on the one Docker
engine, each with its own Caddy and ingress port) and ``meshop gateway run`` with ``tls internal``.

The cluster has its own KV prefix; its nodes' names are unique, and teardown removes exactly their
containers and registrations. Tests leave the cluster as they found it (documents deleted, nodes
uncordoned).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeRecord, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.routing.helpers import (
    Gateway,
    NodeAgent,
    cleanup_node,
    start_agent_process,
    start_gateway,
    stop_caddy_dir,
)
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


@dataclass
class Cluster:
    store: KVStore
    controller: Controller
    agents: dict[str, NodeAgent]
    gateway: Gateway
    workdir: Path

    @property
    def nodes(self) -> list[str]:
        return sorted(self.agents)


@pytest.fixture(scope="module")
def cluster(
    consul_server: ConsulServer, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    prefix = f"t-{secrets.token_hex(4)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(config)
    workdir = tmp_path_factory.mktemp("routing")
    names = [f"ra{secrets.token_hex(3)}", f"rb{secrets.token_hex(3)}"]
    agents: dict[str, NodeAgent] = {}
    controller: Controller | None = None
    gateway: Gateway | None = None
    try:
        for name in names:
            agents[name] = start_agent_process(consul_server.addr, prefix, name, workdir)
        gateway = start_gateway(consul_server.addr, prefix, workdir)
        options = ControllerOptions(
            f"{prefix}-c1", grace_period=5.0, lock_delay=1, check_ttl=1.0, local_cluster=True, trust_node_records=True
        )
        controller = Controller(acl.config_for(consul_server.addr, prefix, "controller"), options).start()

        def nodes_up() -> bool:
            for agent in agents.values():
                entry = store.get(keys.node(agent.name))
                if entry is None or NodeRecord.from_dict(loads_json(entry.value)).ingress_port != agent.ingress_port:
                    return False
            return True

        wait_until(nodes_up, 30, what="both agents' node records with their ingress ports")
        wait_until(lambda: controller.election.is_leader and controller.loop.passes > 0, 15, what="a leader")
        yield Cluster(store, controller, agents, gateway, workdir)
    finally:
        if controller is not None:
            controller.stop()
        if gateway is not None:
            gateway.process.stop()
            stop_caddy_dir(gateway.caddy_dir)
        for agent in agents.values():
            agent.process.stop()
            assert not agent.process.alive()
            stop_caddy_dir(agent.caddy_dir)
            cleanup_node(docker_client, store, agent.name)
        acl.close(consul_server.addr, prefix)
