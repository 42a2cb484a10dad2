"""Hostnames are owned. A team allowed to write only ``desired/services/`` tries to take another team's
route host with an alphabetically earlier Service name (before issue 11 that won: the first name in
alphabetical order got the host, and ``apply`` said nothing). Now ``validate``/``diff``/``apply`` refuse
it naming the owner; written straight into KV it gets ``RouteConflict`` naming the owner, across a
controller failover; the host changes hands only when the owner is deleted.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.cli.main import run
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import RouteRecord, ServiceStatus, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def service(name: str, host: str) -> dict:
    return {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "image": "busybox:1",
            "ports": [{"name": "http", "container": 80}],
            "route": {"host": host, "port": "http"},
        },
    }


@pytest.fixture
def cluster(consul_server: ConsulServer) -> Iterator[tuple[ConsulConfig, KVStore, list[Controller]]]:
    prefix = f"t-{secrets.token_hex(4)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    controllers: list[Controller] = []
    try:
        yield config, KVStore(config), controllers
    finally:
        for controller in controllers:
            controller.stop()
        acl.close_everywhere(prefix)


def start_controller(config: ConsulConfig, controllers: list[Controller], ident: str) -> Controller:
    options = ControllerOptions(ident, lock_delay=0, check_ttl=1.0, resync=2.0)
    controller = Controller(acl.config_for(f"{config.host}:{config.port}", config.prefix, "controller"), options)
    controller.start()
    controllers.append(controller)
    wait_until(lambda: controller.election.is_leader and controller.loop.passes > 0, 20, what=f"{ident} to lead")
    return controller


def owner(store: KVStore, host: str) -> str | None:
    entry = store.get(keys.route(host))
    return RouteRecord.from_dict(loads_json(entry.value)).service if entry else None


def degraded(store: KVStore, name: str) -> tuple[str, str] | None:
    entry = store.get(keys.service_status(name))
    if entry is None:
        return None
    condition = ServiceStatus.from_dict(loads_json(entry.value)).condition("Degraded")
    return (condition.reason, condition.message) if condition and condition.status == "True" else None


def meshop(config: ConsulConfig, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    addr = f"{config.host}:{config.port}"
    token = acl.token_for(addr, config.prefix, list(args)) or ""  # operator for apply, read-only otherwise
    code = run(["--consul-addr", config.address, "--prefix", config.prefix, "--token", token, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_later_service_cannot_take_a_route_host(
    cluster: tuple[ConsulConfig, KVStore, list[Controller]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config, store, controllers = cluster
    host = "shop.sec.test"
    start_controller(config, controllers, "c1")
    (tmp_path / "zshop.json").write_text(json.dumps(service("zshop", host)))
    assert meshop(config, capsys, "apply", "-f", str(tmp_path / "zshop.json"))[0] == 0
    wait_until(lambda: owner(store, host) == "zshop", 20, what="zshop to own the host")

    thief = tmp_path / "aaa.json"
    thief.write_text(json.dumps(service("aaa", host)))
    for verb in (["apply"], ["diff"], ["validate", "--cluster"]):
        code, _, err = meshop(config, capsys, *verb, "-f", str(thief))
        assert code == 1, (verb, err)
        assert "spec.route.host" in err and "belongs to service zshop" in err, (verb, err)
    assert store.get(keys.desired_service("aaa")) is None  # apply wrote nothing

    store.put(keys.desired_service("aaa"), json.dumps(service("aaa", host)))  # past the CLI, straight to KV
    wait_until(lambda: degraded(store, "aaa") is not None, 20, what="aaa's RouteConflict")
    reason, message = degraded(store, "aaa")  # type: ignore[misc]
    assert reason == "RouteConflict" and "belongs to service zshop" in message
    assert owner(store, host) == "zshop"
    out = meshop(config, capsys, "status")[1]
    assert "RouteConflict" in out and "zshop" in out

    controllers[0].stop()  # failover: a new leader reads ownership back from the route record
    second = start_controller(config, controllers, "c2")
    passes = second.loop.passes
    wait_until(lambda: second.loop.passes > passes + 1, 20, what="c2 to run passes")
    assert owner(store, host) == "zshop"
    assert degraded(store, "aaa")[0] == "RouteConflict"  # type: ignore[index]

    assert meshop(config, capsys, "delete", "service", "zshop")[0] == 0  # the owner goes: the host is free
    wait_until(lambda: owner(store, host) == "aaa", 20, what="aaa to get the host once zshop is deleted")
    wait_until(lambda: degraded(store, "aaa") is None, 20, what="aaa's conflict to clear")


def test_a_host_outside_the_gateway_domains_is_visible_in_status(
    cluster: tuple[ConsulConfig, KVStore, list[Controller]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, store, controllers = cluster
    start_controller(config, controllers, "c1")
    gateway = {"apiVersion": "meshop.io/v1alpha1", "kind": "Gateway", "metadata": {"name": "gateway"}}
    gateway["spec"] = {"domains": ["sec.test"], "tls": {"mode": "internal"}}
    store.put(keys.DESIRED_GATEWAY, json.dumps(gateway))
    store.put(keys.desired_service("stray"), json.dumps(service("stray", "stray.example.org")))
    wait_until(lambda: degraded(store, "stray") is not None, 20, what="stray's OutsideDomains")
    assert degraded(store, "stray")[0] == "OutsideDomains"  # type: ignore[index]
    out = meshop(config, capsys, "status")[1]
    assert "OutsideDomains" in out and "stray.example.org" in out


def test_no_service_can_take_the_dashboard_host(
    cluster: tuple[ConsulConfig, KVStore, list[Controller]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The page where people type the dashboard password is never a service's: ``apply`` refuses the
    host naming the Gateway document; written straight into KV it gets ``RouteConflict`` and no record."""
    config, store, controllers = cluster
    start_controller(config, controllers, "c1")
    host = "dash.sec.test"
    gateway = {"apiVersion": "meshop.io/v1alpha1", "kind": "Gateway", "metadata": {"name": "gateway"}}
    gateway["spec"] = {"domains": ["sec.test"], "tls": {"mode": "internal"}, "dashboard": {"host": host}}
    store.put(keys.DESIRED_GATEWAY, json.dumps(gateway))
    phish = tmp_path / "phish.json"
    phish.write_text(json.dumps(service("phish", host)))
    for verb in (["apply"], ["validate", "--cluster"]):
        code, _, err = meshop(config, capsys, *verb, "-f", str(phish))
        assert code == 1, (verb, err)
        assert "spec.route.host" in err and "spec.dashboard.host" in err, (verb, err)
    assert store.get(keys.desired_service("phish")) is None
    store.put(keys.desired_service("phish"), json.dumps(service("phish", host)))  # past the CLI
    wait_until(lambda: degraded(store, "phish") is not None, 20, what="phish's RouteConflict")
    reason, message = degraded(store, "phish")  # type: ignore[misc]
    assert reason == "RouteConflict" and "the dashboard's" in message
    assert owner(store, host) is None  # no routes/<host> record: the gateway's site stays the dashboard's
