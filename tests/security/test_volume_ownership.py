"""Volumes: an existing Docker volume is mounted only into the service that owns it (by its labels).

Attacks: a volume with the Docker name meshop will use for service ``app``'s volume ``data`` exists
already, (1) labelled as another service's volume (a name collision such as service ``a-b`` volume
``c`` vs service ``a`` volume ``b-c``, or a volume copied by hand), holding that service's data;
(2) unlabelled (made outside meshop, e.g. seeded with hostile content). Before, only the node label was
checked, so (1) was mounted into the wrong service. Now both are refused with ``VolumeNotOwned``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from meshop.agent.planning import labels as L
from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until


@pytest.mark.parametrize("owner", ["other-service", "unlabelled"])
def test_a_volume_that_is_not_the_services_own_is_never_mounted(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, docker_client: Any, owner: str
) -> None:
    name = L.volume_name(node, "app", "data")  # whatever scheme the agent uses
    labels = {} if owner == "unlabelled" else L.volume_labels(node, "victim", "data", False)
    docker_client.volumes.create(name, labels=labels)
    token = f"victim-data-{secrets.token_hex(6)}"
    docker_client.containers.run(
        TEST_IMAGE, ["/bin/sh", "-c", f"echo {token} > /v/file"], volumes={name: {"bind": "/v"}}, remove=True
    )
    try:
        start_agent()
        assign(store, node, "app", {**SLEEPER, "volumes": [{"name": "data", "mountPath": "/data"}]})
        record = wait_until(
            lambda: (o := observed(store, node, "app")) and (o.reason or o.ready) and o, 15, what="a verdict"
        )
        assert record.reason == "VolumeNotOwned" and name in record.error, record
        assert ("not made by meshop" if owner == "unlabelled" else "service victim") in record.error
        assert engine.running("app") == []
        assert (docker_client.volumes.get(name).attrs["Labels"] or {}) == labels  # left as it was
    finally:
        for container in engine.containers("app"):
            container.remove(force=True)
        docker_client.volumes.get(name).remove(force=True)


def test_the_services_own_volume_is_mounted_again_after_its_container_is_gone(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    start_agent()
    spec = {**SLEEPER, "volumes": [{"name": "data", "mountPath": "/data"}]}
    assign(store, node, "app", spec)
    first = wait_until(lambda: (c := engine.running("app")) and c[0], 15, what="the first container")
    first.exec_run(["/bin/sh", "-c", "echo kept > /data/file"])
    first.remove(force=True)  # drift: the agent recreates it with the same (own) volume
    second = wait_until(
        lambda: (c := engine.running("app")) and c[0].id != first.id and c[0], 15, what="the replacement"
    )
    assert second.exec_run(["/bin/cat", "/data/file"]).output == b"kept\n"
