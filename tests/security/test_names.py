"""Names: a Service cannot pass for agent health, nor join a Consul service meshop does not own.

Before issue 11 a Service named ``meshop-agent`` was valid; its replicas registered in Consul service
``meshop-agent`` with ``node`` meta, and the controller counted them as that node's agent health (a node
whose agent was gone stayed Ready and kept its work). And a replica registered into any Consul service
name, e.g. one a database of the user's had, so that service's clients were sent to the container.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.agent.cluster.registrations import ReplicaRegistrar, replica_registration
from meshop.agent.planning.plan import Container
from meshop.cli.main import run
from meshop.consul.client import make_client
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Registration, Services
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import ServiceSpec, keys
from meshop.model.records import Capacity, NodeRecord, NodeStatus, ServiceStatus, dumps, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


@pytest.fixture
def config(consul_server: ConsulServer) -> Iterator[ConsulConfig]:
    """The test's own view (master token): it writes and registers as an attacker would."""
    prefix = f"t-{secrets.token_hex(4)}"
    yield ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    acl.close_everywhere(prefix)


def service(name: str) -> dict:
    spec = {"image": "busybox:1", "ports": [{"name": "http", "container": 80}]}
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def controller(config: ConsulConfig) -> Iterator[Controller]:
    role = acl.config_for(f"{config.host}:{config.port}", config.prefix, "controller")
    ctl = Controller(role, ControllerOptions(f"{config.prefix}-c", grace_period=1.0, lock_delay=0, resync=1.0))
    ctl.start()
    try:
        wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 20, what="a leader")
        yield ctl
    finally:
        ctl.stop()


def test_a_service_named_like_meshops_own_is_refused(
    config: ConsulConfig, controller: Controller, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = KVStore(config)
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(service("meshop-agent")))
    token = acl.token_for(f"{config.host}:{config.port}", config.prefix, ["apply"]) or ""
    code = run(["--consul-addr", config.address, "--prefix", config.prefix, "--token", token, "apply", "-f", str(path)])
    assert code == 1 and "metadata.name: is reserved" in capsys.readouterr().err
    store.put(keys.desired_service("meshop-agent"), json.dumps(service("meshop-agent")))  # straight to KV

    def valid_false() -> bool:
        entry = store.get(keys.service_status("meshop-agent"))
        valid = ServiceStatus.from_dict(loads_json(entry.value)).condition("Valid") if entry else None
        return valid is not None and valid.status == "False" and "reserved" in valid.message

    wait_until(valid_false, 20, what="Valid=False for a Service named meshop-agent")


def test_a_replica_registration_is_never_counted_as_agent_health(config: ConsulConfig, controller: Controller) -> None:
    store = KVStore(config)
    services = Services(config, make_client(config))
    victim = f"victim{secrets.token_hex(3)}"
    store.put(keys.node(victim), dumps(NodeRecord(victim, "10.0.0.9", {}, Capacity(4.0, 2**33), version="sim")))
    # what a replica of a Service named meshop-agent registers (no agent of the victim node is registered)
    fake = f"meshop-{victim}-meshop-agent-0"
    meta = {"node": victim, "service": "meshop-agent", "replica": "0"}
    services.register(Registration(fake, "meshop-agent", "10.0.0.9", 80, meta=meta))
    try:

        def not_ready() -> NodeStatus | None:
            entry = store.get(keys.node_status(victim))
            status = NodeStatus.from_dict(loads_json(entry.value)) if entry else None
            return status if status is not None and status.state == "NotReady" else None

        status = wait_until(not_ready, 20, what=f"{victim} NotReady although a replica registered for it")
        assert "agent not registered" in status.problem  # type: ignore[union-attr]
    finally:
        services.deregister(fake)


def test_replicas_never_join_a_consul_service_meshop_does_not_own(config: ConsulConfig) -> None:
    # the registrar with the master token: ACLs let an agent register a service name once a Service of
    # that name is assigned to its node, which is exactly when this check is the only guard left
    services = Services(config, make_client(config))
    name = f"payments{secrets.token_hex(3)}"
    node = f"n{secrets.token_hex(3)}"
    services.register(Registration(f"{name}-db", name, "10.0.0.5", 5432))  # the user's own, not meshop's
    registrar = ReplicaRegistrar(services, node)
    spec = ServiceSpec.from_dict({"image": "busybox:1", "ports": [{"name": "http", "container": 80}]})
    container = Container("c" * 64, "meshop-x", name, 0, "h", "h", 1, "busybox:1", "running", host_ports={"80/tcp": 1})
    reg = replica_registration(node, "127.0.0.1", name, 0, container, spec, (80, "tcp"), True)
    try:
        assert registrar.sync({reg.service_id: (reg, container.id)}) == 0
        assert reg.service_id not in services.local()
        assert f"{name}-db" in registrar.refused[name]
        _, instances = services.instances(name)
        assert [i.service_id for i in instances] == [f"{name}-db"]  # the user's service is as it was

        services.deregister(f"{name}-db")  # the name is free again: meshop may own it
        assert registrar.sync({reg.service_id: (reg, container.id)}) == 1
        assert reg.service_id in services.local() and registrar.refused == {}
    finally:
        for sid in (reg.service_id, f"{name}-db"):
            with contextlib.suppress(ConsulError):  # already gone
                services.deregister(sid)
