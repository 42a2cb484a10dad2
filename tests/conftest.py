"""Fixtures that start real components on free loopback ports; everything is stopped by PID.

Tests share one Consul per session but each test gets its own KV prefix (``t-<random>``), so tests
never see each other's keys and several sessions can run on one machine at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.caddy_server import CaddyServer
from tests.support.consul_server import ConsulServer
from tests.support.registry import RegistryServer

TEST_IMAGE = "meshop-test/busybox:1"


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    server = ConsulServer(tmp_path_factory.mktemp("consul")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def acl_consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    """A second Consul with ACLs on (default deny); ``.token`` is its master token."""
    token = "8d1d6b0e-6d2c-4a4f-9b1e-2f6f0c7d9a11"
    hcl = f'acl {{ enabled = true, default_policy = "deny", tokens {{ master = "{token}" }} }}'
    server = ConsulServer(tmp_path_factory.mktemp("acl-consul"), hcl=hcl)
    server.token = token
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture
def consul_config(consul_server: ConsulServer, prefix: str):
    from meshop.consul.config import ConsulConfig

    return ConsulConfig.from_env({}, addr=consul_server.addr, prefix=prefix, timeout=5.0)


@pytest.fixture
def store(consul_config):
    from meshop.consul.store import KVStore

    return KVStore(consul_config)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no Docker engine answers ({exc}); run `make setup`")
    try:
        client.images.get(TEST_IMAGE)
    except Exception:  # noqa: BLE001
        pytest.fail(f"test image {TEST_IMAGE} is missing; run `make setup`")
    yield client
    client.close()


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[CaddyServer]:
    server = CaddyServer(tmp_path / "caddy").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()
