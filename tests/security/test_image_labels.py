"""Image labels are hostile input: an image cannot make a container pass for another service's replica.

A container inherits its image's labels. Attacks, with images built by ``docker import -c 'LABEL ...'``:
(1) an image carrying ``meshop.managed=true``, ``meshop.node``, ``meshop.service=web`` and web's current
hashes, run on the node outside meshop: before, the agent took it for web's replica 0 and registered it
in Consul (traffic and discovery went to the impostor); now containers of images that set ``meshop.*``
labels are never taken for meshop's, and meshop never runs such images; (2) an image carrying
``tsdproxy.enable=true``: before, any service running it was exposed on the tailnet without asking;
now the agent always sets ``tsdproxy.enable`` itself.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from meshop.agent.planning import labels as L
from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import (
    SLEEPER,
    AgentFactory,
    Engine,
    assign,
    make_assignment,
    observed,
    registrations,
)
from tests.support.procs import wait_until


def docker(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, check=True, timeout=120).stdout.decode()


@pytest.fixture
def labelled_image() -> Iterator[Any]:
    """``build(labels)``: the test image's files re-imported with these labels; removed afterwards."""
    made: list[str] = []

    def build(labels: dict[str, str]) -> str:
        tag = f"meshop-test/hostile:{secrets.token_hex(4)}"
        container = docker("create", TEST_IMAGE).strip()
        try:
            rootfs = subprocess.run(["docker", "export", container], capture_output=True, check=True).stdout
        finally:
            docker("rm", "-f", container)
        changes = [arg for k, v in labels.items() for arg in ("-c", f"LABEL {k}={v}")]
        docker("import", *changes, "-c", 'CMD ["/bin/sleep", "3600"]', "-", tag, stdin=rootfs)
        made.append(tag)
        return tag

    yield build
    for tag in made:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60)


def test_a_container_of_an_image_claiming_meshop_labels_is_not_taken_for_a_replica(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any, labelled_image: Any
) -> None:
    assignment = make_assignment(node, "web", SLEEPER)
    claimed = L.container_labels(node, "web", 0, assignment.spec_hash, assignment.spec_hash, assignment.generation)
    image = labelled_image(claimed)
    impostor = docker("run", "-d", "--name", f"impostor-{node}", image).strip()  # outside meshop
    try:
        assign(store, node, "web", SLEEPER)
        start_agent()
        record = wait_until(lambda: (o := observed(store, node, "web")) and o.ready == 1 and o, 15, what="ready")
        assert all(c.id != impostor[:12] for c in record.containers)
        registered = [
            r["Meta"]["container"] for r in registrations(consul_server.addr, node).values() if "container" in r["Meta"]
        ]
        assert registered and impostor[:12] not in registered
        assert docker("inspect", "-f", "{{.State.Running}}", impostor).strip() == "true"  # and never touched
    finally:
        docker("rm", "-f", impostor)


def test_meshop_refuses_to_run_an_image_that_claims_its_labels(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, labelled_image: Any
) -> None:
    image = labelled_image({"meshop.managed": "true", "meshop.service": "other"})
    start_agent()
    assign(store, node, "app", {"image": image})
    record = wait_until(lambda: (o := observed(store, node, "app")) and o.reason and o, 15, what="a verdict")
    assert record.reason == "ImageRefused" and "meshop.managed" in record.error
    assert engine.containers("app") == []


def test_an_image_cannot_expose_itself_on_the_tailnet(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, labelled_image: Any
) -> None:
    image = labelled_image({"tsdproxy.enable": "true", "tsdproxy.name": "evil"})
    start_agent()
    assign(store, node, "quiet", {"image": image})
    container = wait_until(lambda: (c := engine.running("quiet")) and c[0], 15, what="the container")
    assert container.labels["tsdproxy.enable"] == "false"
