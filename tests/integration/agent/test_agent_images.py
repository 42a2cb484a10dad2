"""Images: pulled from a real registry when missing; a pull that keeps failing is an observed error,
retried with backoff, and never holds up other services."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed, registry_only_image
from tests.support.procs import wait_until
from tests.support.registry import RegistryServer


@pytest.fixture
def registry_image(docker_client: Any, registry: RegistryServer, node: str) -> Iterator[str]:
    """A reference that exists only in the registry (pushed, then the local tag removed)."""
    with registry_only_image(docker_client, registry, f"meshop-agent-{node}") as reference:
        yield reference


def test_image_only_in_the_registry_is_pulled(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, docker_client: Any, registry_image: str
) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(registry_image)
    start_agent()
    assign(store, node, "pulled", {**SLEEPER, "image": registry_image})
    wait_until(lambda: engine.running("pulled"), 15, what="the pulled image's container running")
    assert engine.running("pulled")[0].attrs["Config"]["Image"] == registry_image
    assert docker_client.images.get(registry_image)


def test_missing_image_is_an_observed_error_and_blocks_nobody(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    docker_client: Any,
    registry: RegistryServer,
) -> None:
    missing = f"{registry.addr}/meshop-missing-{node}:1"
    start_agent()
    started = time.monotonic()
    assign(store, node, "broken", {**SLEEPER, "image": missing})
    assign(store, node, "fine", SLEEPER)
    wait_until(lambda: engine.running("fine"), 2.0, what="the healthy service running within 2 s")
    assert time.monotonic() - started < 2.0
    record = wait_until(
        lambda: (o := observed(store, node, "broken")) and o.reason == "ImagePullFailed" and o,
        20,
        what="ImagePullFailed in observed state",
    )
    assert missing in record.error
    assert record.ready == 0 and record.containers == ()
    assert engine.containers("broken") == []
    # Ready once it ran minReadySeconds (2 s) without a crash
    fine = wait_until(lambda: (o := observed(store, node, "fine")) and o.ready == 1 and o, 5, what="fine Ready")
    assert fine.reason == ""
    # retried with backoff: once the image appears in the registry the service starts by itself
    docker_client.images.get(TEST_IMAGE).tag(missing)
    try:
        for line in docker_client.images.push(missing, stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(missing)
        wait_until(lambda: engine.running("broken"), 30, what="the retried pull to succeed")
        wait_until(
            lambda: (o := observed(store, node, "broken")) and o.ready == 1 and o.reason == "",
            10,
            what="the error to clear",
        )
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(missing, force=True)


def test_failed_pull_backs_off_with_growing_delays(
    start_agent: AgentFactory, store: KVStore, node: str, registry: RegistryServer
) -> None:
    agent = start_agent()
    assign(store, node, "broken", {**SLEEPER, "image": f"{registry.addr}/meshop-missing-{node}:2"})
    holds = agent.daemon.reconciler.memory.services
    wait_until(lambda: holds.backoff.failures("broken") >= 3, 40, what="three failed pull rounds")
    first = holds.backoff.failures("broken")
    delay = holds.until["broken"] - time.monotonic()
    assert delay > 1.0  # base 1 s doubled at least twice: 4 s after the third failure
    assert first >= 3
