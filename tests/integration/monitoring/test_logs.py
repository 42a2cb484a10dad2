"""``--log-format json``: one JSON event per line from the real daemons, and a secret env value read
from a Consul key never appears in any log, at debug level, through a missing key, a create and a
rotation of the secret."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.monitoring.conftest import remove_node_containers
from tests.integration.monitoring.stack import Stack, sleeper_doc
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def env_of(docker_client: Any, node: str) -> list[list[str]]:
    containers = docker_client.containers.list(filters={"label": [f"meshop.node={node}", "meshop.service=app"]})
    return [c.attrs["Config"]["Env"] for c in containers]


def test_json_logs_are_one_event_per_line_and_never_show_a_secret(
    consul_server: ConsulServer, docker_client: Any, tmp_path: Path
) -> None:
    prefix = f"t-{secrets.token_hex(4)}"
    store = KVStore(ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix))
    raw = store.client
    key = f"{prefix}/secrets/app/api-token"  # the service's own secrets folder (its agent may read only those)
    values = [f"s3cret-{secrets.token_hex(8)}" for _ in range(2)]
    # secrets are read at apply time, so a changed key is seen on the next pass: resync every second
    extra = {"agent": ["--resync", "1"]}
    stack = Stack(consul_server.addr, prefix, tmp_path).start(("controller", "agent"), "json", "debug", extra)
    try:
        stack.wait_registered()
        env = [{"name": "API_TOKEN", "valueFrom": {"consulKey": key}}]
        stack.apply(sleeper_doc("app", stack.node, env))  # the key does not exist yet: reported, nothing runs
        wait_until(
            lambda: (entry := store.get(keys.observed(stack.node, "app"))) and b"SecretUnavailable" in entry.value,
            20,
            what=f"SecretUnavailable in observed state\n{stack.log_tails()}",
        )
        for value in values:
            raw.kv.put(key, value)  # the second value rotates it: the agent replaces the container

            def running(value: str = value) -> bool:
                return [f"API_TOKEN={value}" in e for e in env_of(docker_client, stack.node)] == [True]

            wait_until(running, 30, what=f"the container with the secret\n{stack.log_tails()}")
        assert stack.stop() == {"controller": 0, "agent": 0}
    finally:
        stack.stop()
        remove_node_containers(docker_client, stack.node)
        raw.kv.delete(key)
        acl.close(consul_server.addr, prefix)

    for component in ("controller", "agent"):
        text = (tmp_path / f"{component}.log").read_text()
        assert not any(value in text for value in values), f"a secret in the {component} log"
        events = [json.loads(line) for line in text.splitlines()]  # every line is one JSON event
        assert events and all({"time", "level", "logger", "msg"} <= set(e) for e in events)
    messages = [e["msg"] for e in events]
    assert any(m.startswith("creating meshop-") for m in messages) and any(m.startswith("removing") for m in messages)
