"""From assignment to desired service and container config: hashes, policy, strategy, ports, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from meshop.agent.planning import labels as L
from meshop.agent.planning.desired import (
    config_hash,
    container_config,
    desired_service,
    effective_strategy,
    policy_refusal,
    primary_port,
)
from meshop.model import Policy, ServiceSpec, spec_hash
from meshop.model.records import Assignment

BASE: dict[str, Any] = {
    "image": "app:1",
    "command": ["/bin/httpd"],
    "args": ["-f", "-p", "8080"],
    "ports": [{"name": "http", "container": 8080}, {"name": "metrics", "container": 9100}],
}


def spec(**extra: Any) -> ServiceSpec:
    return ServiceSpec.from_dict({**BASE, **extra})


def assignment(s: ServiceSpec, replicas: int = 2) -> Assignment:
    return Assignment("web", "n1", replicas, 9, spec_hash(s), s.to_dict())


def test_config_hash_is_the_spec_hash_without_secrets_and_changes_with_a_secret() -> None:
    assert config_hash("abcd", {}) == "abcd"
    one = config_hash("abcd", {"PW": "one"})
    assert one != "abcd" and len(one) == 16
    assert config_hash("abcd", {"PW": "one"}) == one
    assert config_hash("abcd", {"PW": "two"}) != one
    assert config_hash("abce", {"PW": "one"}) != one
    assert "one" not in one


@pytest.mark.parametrize(
    ("extra", "policy", "refused"),
    [
        ({"privileged": True}, Policy(), "privileged mode"),
        ({"privileged": True}, Policy(allow_privileged=True), None),
        ({"networkMode": "host"}, Policy(), "host networking"),
        ({"networkMode": "host"}, Policy(allow_host_network=True), None),
        ({"volumes": [{"hostPath": "/srv", "mountPath": "/srv"}]}, Policy(), None),  # hostpaths decides
        ({"volumes": [{"name": "data", "mountPath": "/data"}]}, Policy(), None),
    ],
    ids=["priv", "priv-allowed", "host", "host-allowed", "bind-elsewhere", "named-volume"],
)
def test_policy_refusal(extra: dict[str, Any], policy: Policy, refused: str | None) -> None:
    got = policy_refusal(spec(**extra), policy)
    if refused is None:
        assert got is None
    else:
        assert got is not None and refused in got


@pytest.mark.parametrize(
    ("extra", "strategy"),
    [
        ({}, "start-first"),
        ({"update": {"strategy": "stop-first"}}, "stop-first"),
        (
            {
                "ports": [{"name": "http", "container": 8080, "host": 80}],
                "update": {"strategy": "stop-first"},
            },
            "stop-first",
        ),
        ({"networkMode": "host"}, "stop-first"),
    ],
    ids=["default", "explicit-stop-first", "fixed-port", "host-network"],
)
def test_effective_strategy(extra: dict[str, Any], strategy: str) -> None:
    assert effective_strategy(spec(**extra)) == strategy


def test_desired_service_with_unknown_secrets_has_no_config_hash() -> None:
    s = spec(env=[{"name": "PW", "valueFrom": {"consulKey": "secret/pw"}}])
    a = assignment(s)
    assert desired_service(a, s, Policy(), None).config_hash is None
    known = desired_service(a, s, Policy(), {"PW": "x"})
    assert known.config_hash == config_hash(a.spec_hash, {"PW": "x"})
    assert known.replicas == 2 and known.generation == 9 and known.spec_hash == a.spec_hash


def test_desired_service_holds_what_the_policy_refuses() -> None:
    s = spec(privileged=True)
    desired = desired_service(assignment(s), s, Policy(), {})
    assert desired.hold is not None and desired.hold.reason == "PolicyRefused"


@pytest.mark.parametrize(
    ("extra", "port"),
    [
        ({}, (8080, "tcp")),
        ({"route": {"host": "web.example.com", "path": "/", "port": "metrics"}}, (9100, "tcp")),
        ({"health": {"tcp": {"port": "metrics"}}}, (9100, "tcp")),
        ({"ports": []}, None),
    ],
    ids=["first-port", "route", "health", "none"],
)
def test_primary_port(extra: dict[str, Any], port: tuple[int, str] | None) -> None:
    assert primary_port(spec(**extra)) == port


def test_container_config_resolves_everything() -> None:
    s = spec(
        env=[{"name": "A", "value": "1"}, {"name": "PW", "valueFrom": {"consulKey": "secret/pw"}}],
        volumes=[{"name": "data", "mountPath": "/data", "deleteWithService": True}],
        resources={"memory": "64Mi", "cpus": 0.5},
        health={"http": {"path": "/health", "port": "http"}},
        expose={"tailnet": {"enabled": True}},
    )
    a = assignment(s)
    cfg = container_config("n1", a, s, 1, "cafe", {"PW": "hunter2"}, "10.0.0.5")
    assert cfg.name == "meshop-n1-web-1-cafe"
    assert cfg.labels["meshop.node"] == "n1" and cfg.labels["meshop.replica"] == "1"
    assert cfg.labels["meshop.config-hash"] == "cafe" and cfg.labels["meshop.spec-hash"] == a.spec_hash
    assert cfg.labels["tsdproxy.enable"] == "true" and cfg.labels["tsdproxy.name"] == "web"
    assert cfg.env == ("A=1", "PW=hunter2")
    assert "hunter2" not in repr(cfg)
    assert cfg.entrypoint == ("/bin/httpd",) and cfg.command == ("-f", "-p", "8080")
    assert {(p.container, p.host_ip, p.host_port) for p in cfg.ports} == {
        (8080, "10.0.0.5", None),
        (9100, "10.0.0.5", None),
    }
    (mount,) = cfg.mounts
    assert mount.source == "meshop-n1-web-data" and mount.target == "/data"
    assert mount.volume_labels["meshop.delete-with-service"] == "true"
    assert cfg.memory == 64 * 2**20 and cfg.nano_cpus == 500_000_000


def test_container_config_sets_the_hardening_and_never_leaves_tsdproxy_to_the_image() -> None:
    s = spec(
        resources={"pids": 64},
        security={"user": "1000:1000", "readOnlyRootFilesystem": True, "capabilities": {"drop": ["all"]}},
    )
    cfg = container_config("n1", assignment(s), s, 0, "cafe", {}, "127.0.0.1")
    assert cfg.labels["tsdproxy.enable"] == "false"  # an image's own LABEL tsdproxy.enable=true is overridden
    assert (cfg.user, cfg.read_only_root, cfg.no_new_privileges, cfg.cap_drop, cfg.pids) == (
        "1000:1000",
        True,
        True,
        ("ALL",),
        64,
    )
    assert container_config("n1", assignment(spec()), spec(), 0, "cafe", {}, "127.0.0.1").pids == 4096


@pytest.mark.parametrize(
    ("image_labels", "claims"),
    [
        (None, []),
        ({"meshop.test-image": "1", "org.opencontainers.image.title": "x"}, []),
        ({"meshop.managed": "true", "meshop.node": "n1"}, ["meshop.managed", "meshop.node"]),
        ({"meshop.spec-hash": "h"}, ["meshop.spec-hash"]),
    ],
    ids=["none", "harmless", "ownership", "identity"],
)
def test_images_that_claim_identity_labels(image_labels: dict[str, str] | None, claims: list[str]) -> None:
    assert L.claims_meshop(image_labels) == claims
