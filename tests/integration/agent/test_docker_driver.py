"""The Docker driver against the real engine: ownership, idempotence, name clashes, failed starts,
pull retries, the events stream, volumes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from meshop.agent.engine.docker_driver import DockerDriver
from meshop.agent.engine.runtime import ContainerConfig, ImagePullFailed, Mount, NameConflict, PortBinding
from meshop.agent.planning import labels as L
from meshop.errors import DriverError
from tests.conftest import TEST_IMAGE
from tests.support.procs import free_port, wait_until
from tests.support.registry import RegistryServer


@pytest.fixture
def driver(node: str) -> Iterator[DockerDriver]:
    d = DockerDriver(node, pull_attempts=3, pull_backoff=0.2)
    yield d
    d.close()


@pytest.fixture
def foreign(docker_client: Any, node: str) -> Iterator[list[Any]]:
    """Containers the driver must never touch; removed afterwards."""
    made: list[Any] = []
    yield made
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def config(node: str, service: str = "app", replica: int = 0, **kw: Any) -> ContainerConfig:
    base: dict[str, Any] = dict(
        name=L.container_name(node, service, replica, "c0ffee"),
        image=TEST_IMAGE,
        labels=L.container_labels(node, service, replica, "c0ffee", "c0ffee", 1),
        entrypoint=("/bin/sleep",),
        command=("3600",),
    )
    base.update(kw)
    return ContainerConfig(**base)


def test_lists_only_this_nodes_managed_containers(
    driver: DockerDriver, node: str, docker_client: Any, foreign: list[Any]
) -> None:
    own = driver.create_and_start(config(node))
    foreign.append(docker_client.containers.run(TEST_IMAGE, ["/bin/sleep", "60"], detach=True, name=f"x-{node}"))
    foreign.append(
        docker_client.containers.run(
            TEST_IMAGE,
            ["/bin/sleep", "60"],
            detach=True,
            name=f"y-{node}",
            labels={L.MANAGED: "true", L.NODE: f"{node}-2", L.SERVICE: "app", L.REPLICA: "0"},
        )
    )
    listed = driver.list_managed()
    assert [c.id for c in listed] == [own]
    (container,) = listed
    assert (container.service, container.replica, container.config_hash, container.generation) == (
        "app",
        0,
        "c0ffee",
        1,
    )
    assert container.state == "running" and container.started_at > time.time() - 60


def test_stats_are_read_one_shot_and_only_for_this_nodes_containers(
    driver: DockerDriver, node: str, docker_client: Any, foreign: list[Any]
) -> None:
    own = driver.create_and_start(config(node))
    other = docker_client.containers.run(TEST_IMAGE, ["/bin/sleep", "60"], detach=True, name=f"s-{node}")
    foreign.append(other)
    driver.list_managed()  # what the reconcile pass does first: the driver reads stats of what it listed
    sample = driver.stats(own)
    assert sample is not None and sample.memory > 0 and sample.memory_limit > 0 and sample.cpu_total > 0
    assert driver.stats(other.id) is None  # not this node's: never read


def test_actions_are_idempotent(driver: DockerDriver, node: str) -> None:
    cid = driver.create_and_start(config(node))
    driver.start(cid)  # already running: no error
    driver.remove(cid, grace=0)
    driver.remove(cid, grace=0)  # already gone: no error
    driver.remove("0" * 64, grace=0)
    assert driver.list_managed() == []


def test_name_clash_with_own_leftover_is_resolved(driver: DockerDriver, node: str, docker_client: Any) -> None:
    cfg = config(node)
    leftover = docker_client.containers.create(TEST_IMAGE, ["/bin/sleep", "1"], name=cfg.name, labels=dict(cfg.labels))
    cid = driver.create_and_start(cfg)
    assert cid != leftover.id
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(leftover.id)
    assert docker_client.containers.get(cid).status == "running"


def test_name_clash_with_a_foreign_container_is_refused(
    driver: DockerDriver, node: str, docker_client: Any, foreign: list[Any]
) -> None:
    cfg = config(node)
    foreign.append(docker_client.containers.run(TEST_IMAGE, ["/bin/sleep", "60"], detach=True, name=cfg.name))
    with pytest.raises(NameConflict, match="does not manage"):
        driver.create_and_start(cfg)
    foreign[0].reload()
    assert foreign[0].status == "running"


def test_failed_start_leaves_no_created_leftover(driver: DockerDriver, node: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = config(node, ports=(PortBinding(8080, "tcp", "127.0.0.1", port),))
        with pytest.raises(DriverError, match=r"starting|address already in use|port"):
            driver.create_and_start(cfg)
    assert driver.list_managed() == []


def test_publishes_ephemeral_and_fixed_ports_on_the_publish_address(driver: DockerDriver, node: str) -> None:
    fixed = free_port()
    driver.create_and_start(
        config(
            node,
            entrypoint=("/bin/httpd",),
            command=("-f", "-p", "8080", "-h", "/www"),
            ports=(PortBinding(8080, "tcp", "127.0.0.1", None), PortBinding(9090, "tcp", "127.0.0.1", fixed)),
        )
    )
    (container,) = driver.list_managed()
    assert container.host_ports["9090/tcp"] == fixed
    assert container.host_ports["8080/tcp"] not in (8080, fixed)


def test_pull_retries_with_backoff_then_fails(driver: DockerDriver, registry: RegistryServer, node: str) -> None:
    started = time.monotonic()
    with pytest.raises(ImagePullFailed, match="after 3 attempts"):
        driver.pull(f"{registry.addr}/nothing-{node}:1")
    assert time.monotonic() - started >= 0.2 + 0.4  # two waits between three attempts


def test_events_stream_sees_own_containers_and_closes(
    driver: DockerDriver, node: str, docker_client: Any, foreign: list[Any]
) -> None:
    stream = driver.events()
    seen: list[dict] = []

    def follow() -> None:
        with contextlib.suppress(DriverError):
            seen.extend(stream)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    foreign.append(docker_client.containers.run(TEST_IMAGE, ["/bin/sleep", "60"], detach=True, name=f"z-{node}"))
    cid = driver.create_and_start(config(node))
    driver.remove(cid, grace=0)
    wait_until(
        lambda: any(e.get("Action") == "destroy" and e.get("id") == cid for e in seen), 5, what="the destroy event"
    )
    assert {e.get("id") for e in seen} == {cid}
    stream.close()
    thread.join(5)
    assert not thread.is_alive()


def test_named_volumes_are_created_labelled_and_only_own_ones_removed(
    driver: DockerDriver, node: str, docker_client: Any
) -> None:
    name = L.volume_name(node, "app", "data")
    vlabels = L.volume_labels(node, "app", "data", False)
    foreign_volume = docker_client.volumes.create(f"foreign-{node}")
    try:
        cid = driver.create_and_start(config(node, mounts=(Mount("/data", name, "volume", False, vlabels),)))
        assert [v.name for v in driver.list_volumes()] == [name]
        assert driver.remove_volume(name) is False  # in use
        driver.remove(cid, grace=0)
        assert driver.remove_volume(name) is True
        with pytest.raises(DriverError, match="not this node's"):
            driver.remove_volume(foreign_volume.name)
        assert docker_client.volumes.get(foreign_volume.name)
    finally:
        foreign_volume.remove(force=True)
