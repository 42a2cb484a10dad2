"""Secrets from Consul keys (resolved at apply time, never leaked, a change rolls the container) and the
agent's own policy (privileged, host network, bind mounts refused unless allowed)."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.store import KVStore
from meshop.model import Policy, keys
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until


@pytest.fixture
def secret_key(store: KVStore, prefix: str) -> Any:
    """A key in service ``app``'s own secrets folder, deleted afterwards."""
    key = f"{prefix}/secrets/app/db-password"
    yield key
    store.client.kv.delete(key)


def test_secret_env_is_resolved_never_leaked_and_a_change_rolls_the_container(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    secret_key: str,
    caplog: pytest.LogCaptureFixture,
    consul_server: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    first_value = f"s3cret-{secrets.token_hex(8)}"
    store.client.kv.put(secret_key, first_value)
    start_agent()
    spec = {**SLEEPER, "env": [{"name": "DB_PASSWORD", "valueFrom": {"consulKey": secret_key}}]}
    assignment = assign(store, node, "app", spec)
    wait_until(lambda: engine.running("app"), 5, what="the container")
    container = engine.running("app")[0]
    assert f"DB_PASSWORD={first_value}" in container.attrs["Config"]["Env"]
    assert container.labels["meshop.spec-hash"] == assignment.spec_hash
    assert container.labels["meshop.config-hash"] != assignment.spec_hash
    assert first_value not in json.dumps(container.labels)
    wait_until(lambda: (o := observed(store, node, "app")) and o.ready == 1, 5, what="observed ready=1")

    second_value = f"s3cret-{secrets.token_hex(8)}"
    store.client.kv.put(secret_key, second_value)
    start_agent.started[0].daemon.wakeup.notify("test")  # secrets are read at apply time: on the next pass

    def rolled() -> bool:
        containers = engine.running("app")
        return (
            len(engine.containers("app")) == 1
            and len(containers) == 1
            and f"DB_PASSWORD={second_value}" in containers[0].attrs["Config"]["Env"]
        )

    wait_until(rolled, 10, what="the container replaced with the new secret")
    assert engine.containers("app")[0].labels["meshop.spec-hash"] == assignment.spec_hash
    # nowhere in Consul (observed state, node record, registrations) and nowhere in the logs
    everything = json.dumps(
        [e.text for e in store.list("").entries if not e.key.startswith(keys.SECRETS)]
        + [json.dumps(v) for v in (store.client.agent.services() or {}).values()]
    )
    assert first_value not in everything and second_value not in everything
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert first_value not in logged and second_value not in logged
    assert "DB_PASSWORD" not in store.get(keys.observed(node, "app")).text


def test_missing_secret_key_is_reported_and_nothing_starts(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, secret_key: str
) -> None:
    start_agent()
    assign(store, node, "app", {**SLEEPER, "env": [{"name": "TOKEN", "valueFrom": {"consulKey": secret_key}}]})
    record = wait_until(
        lambda: (o := observed(store, node, "app")) and o.reason == "SecretUnavailable" and o,
        5,
        what="SecretUnavailable in observed state",
    )
    assert secret_key in record.error
    assert engine.containers("app") == []
    store.client.kv.put(secret_key, "now-there")
    start_agent.started[0].daemon.wakeup.notify("test")
    wait_until(lambda: engine.running("app"), 5, what="started once the key exists")


@pytest.mark.parametrize(
    ("extra", "allow", "refused"),
    [
        ({"privileged": True}, Policy(allow_privileged=True), "privileged mode"),
        ({"networkMode": "host"}, Policy(allow_host_network=True), "host networking"),
        ("bind", Policy(allow_bind_mounts=True), "bind mounts (--allow-bind-mount PATH)"),
    ],
    ids=["privileged", "host-network", "bind-mount"],
)
def test_policy_refuses_risky_containers_unless_allowed(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    tmp_path: Path,
    extra: Any,
    allow: Policy,
    refused: str,
) -> None:
    if extra == "bind":
        extra = {"volumes": [{"hostPath": str(tmp_path), "mountPath": "/host", "readOnly": True}]}
    agent = start_agent()
    assign(store, node, "risky", {**SLEEPER, **extra})
    record = wait_until(
        lambda: (o := observed(store, node, "risky")) and o.reason == "PolicyRefused" and o,
        5,
        what="PolicyRefused in observed state",
    )
    assert refused in record.error
    assert engine.containers("risky") == []
    agent.stop()
    start_agent(policy=allow, bind_mounts=(str(tmp_path),) if extra.get("volumes") else ())
    # allowed now; this test machine may itself forbid privileged containers (no capabilities to
    # hand out), in which case Docker's refusal shows up instead of the agent's
    record = wait_until(
        lambda: (
            (o := observed(store, node, "risky")) and o.reason in ("", "CreateFailed") and (o.ready or o.error) and o
        ),
        10,
        what="the policy refusal gone",
    )
    if record.reason == "CreateFailed":
        assert extra == {"privileged": True} and "operation not permitted" in record.error
    else:
        assert record.ready == 1 and engine.running("risky")


def test_a_secret_written_after_the_assignment_is_picked_up_without_waiting_for_a_resync(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, secret_key: str
) -> None:
    """Nothing wakes the agent when a secret appears (or when `acl sync` grants its folder): it must come
    back for it by itself, well before the 30 s resync."""
    start_agent()
    assign(store, node, "app", {**SLEEPER, "env": [{"name": "DB_PASSWORD", "valueFrom": {"consulKey": secret_key}}]})
    wait_until(
        lambda: (o := observed(store, node, "app")) and o.reason == "SecretUnavailable", 10, what="SecretUnavailable"
    )
    value = f"late-{secrets.token_hex(8)}"
    store.client.kv.put(secret_key, value)
    wait_until(lambda: engine.running("app"), 10, what="the container, once the secret exists")
    assert f"DB_PASSWORD={value}" in engine.running("app")[0].attrs["Config"]["Env"]
