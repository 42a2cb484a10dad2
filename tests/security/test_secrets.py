"""Secrets: a service reads only its own secrets folder, and no secret value leaves the agent in an error.

Attacks: (1) a Service document names another service's secret key; (2) an assignment that names one
reaches the agent anyway (written to KV directly, or by a controller that did not check); (3) a secret
holding a NUL byte, which runc refuses by echoing ``NAME=value`` into the error that used to land in
observed state and the logs; (4) the same echo straight from the Docker driver.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from meshop.agent.engine.docker_driver import DockerDriver
from meshop.agent.engine.runtime import ContainerConfig
from meshop.agent.planning.labels import container_labels
from meshop.consul.store import KVStore
from meshop.errors import DriverError
from meshop.model import keys
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until


@pytest.fixture
def other_secret(store: KVStore, prefix: str) -> Any:
    """Service ``db``'s password, in ``db``'s own secrets folder."""
    key, value = f"{prefix}/secrets/db/password", f"db-pw-{secrets.token_hex(8)}"
    store.client.kv.put(key, value)
    yield key, value
    store.client.kv.delete(key)


def everything_in_consul(store: KVStore) -> str:
    """Every key under the prefix but the secrets folder, and every service registration."""
    kv = [e.text for e in store.list("").entries if not e.key.startswith("secrets/")]
    return json.dumps(kv + [json.dumps(v) for v in (store.client.agent.services() or {}).values()])


def test_a_document_naming_another_services_secret_is_refused(
    meshop: Any, store: KVStore, prefix: str, other_secret: tuple[str, str], tmp_path: Path
) -> None:
    key, _ = other_secret
    doc = tmp_path / "app.yaml"
    doc.write_text(
        "apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: app}\n"
        f"spec:\n  image: {TEST_IMAGE}\n  env: [{{name: PW, valueFrom: {{consulKey: {key}}}}}]\n"
    )
    code, out, err = meshop("apply", "-f", str(doc))
    assert code == 1 and out == ""
    assert "spec.env[0].valueFrom.consulKey" in err and f"{prefix}/secrets/app/" in err
    assert store.get(keys.desired_service("app")) is None


@pytest.mark.parametrize(
    "where", ["other-service", "outside-prefix"], ids=["another-services-secret", "key-outside-the-prefix"]
)
def test_an_assignment_naming_a_foreign_key_is_refused_by_the_agent_without_reading_it(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    prefix: str,
    other_secret: tuple[str, str],
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key, value = other_secret
    if where == "outside-prefix":
        key = f"{prefix}-elsewhere/password"
        store.client.kv.put(key, value)
    try:
        start_agent()
        assign(store, node, "app", {**SLEEPER, "env": [{"name": "PW", "valueFrom": {"consulKey": key}}]})
        record = wait_until(
            lambda: (o := observed(store, node, "app")) and (o.reason or o.containers) and o,
            10,
            what="the agent's verdict",
        )
        assert record.reason in ("InvalidAssignment", "SecretRefused") and key in record.error
        assert engine.containers("app") == []
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert value not in everything_in_consul(store) and value not in logged
    finally:
        if where == "outside-prefix":
            store.client.kv.delete(key)


def test_a_secret_with_a_nul_byte_never_reaches_observed_state_or_logs(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key, hidden = f"{prefix}/secrets/app/token", f"tok-{secrets.token_hex(8)}"
    store.client.kv.put(key, f"{hidden}\x00{hidden}-tail")
    start_agent()
    assign(store, node, "app", {**SLEEPER, "env": [{"name": "TOKEN", "valueFrom": {"consulKey": key}}]})
    # the agent may first be refused by Consul itself (SecretUnavailable) until `acl sync` grants it the
    # service's secrets folder; what matters is that it ends refusing the value, never passing it on
    record = wait_until(
        lambda: (o := observed(store, node, "app")) and o.reason == "SecretRefused" and o,
        20,
        what="SecretRefused in observed state",
    )
    assert "NUL byte" in record.error, record
    assert engine.running("app") == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert hidden not in everything_in_consul(store) and hidden not in logged


def test_the_docker_driver_redacts_what_runc_echoes(docker_client: Any, node: str) -> None:
    hidden = f"tok-{secrets.token_hex(8)}"
    config = ContainerConfig(
        name=f"meshop-{node}-leak-0-x",
        image=TEST_IMAGE,
        labels=container_labels(node, "leak", 0, "x", "x", 1),
        command=("/bin/sleep", "5"),
        env=(f"TOKEN={hidden}\x00tail", "PLAIN=visible"),
        secret_names=("TOKEN",),
    )
    driver = DockerDriver(node)
    try:
        with pytest.raises(DriverError) as info:
            driver.create_and_start(config)
    finally:
        driver.close()
    message = str(info.value)
    assert "null" in message and "TOKEN=<redacted>" in message  # runc's own words, with the value gone
    assert hidden not in message and "tail" not in message
