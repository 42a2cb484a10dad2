"""Fixtures that start real components on free loopback ports; everything is stopped by PID.

Tests share one Consul per session but each test gets its own KV prefix (``t-<random>``), so tests
never see each other's keys and several sessions can run on one machine at once.

The session Consul runs with ACLs on and default deny, as a fleet should: test code uses its master
token (``consul_config``, ``store``), every meshop daemon and command the tests start uses its own role's
token for the test's prefix (``tests/support/acl.py``; ``role_config`` for in-process daemons).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import acl
from tests.support.caddy_server import CaddyServer
from tests.support.consul_server import ConsulServer
from tests.support.registry import RegistryServer

TEST_IMAGE = "meshop-test/busybox:1"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist hands its workers the controlling terminal's size (COLUMNS=80 without one); meshop's
    # tables read COLUMNS in a pipe, and the tests compare whole columns as a pipe (a script) sees them
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    """The session's Consul: ACLs on, default deny; ``.token`` is its master token."""
    server = ConsulServer(tmp_path_factory.mktemp("consul"), hcl=acl.ACL_HCL)
    server.token = acl.MASTER_TOKEN
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def acl_consul(consul_server: ConsulServer) -> ConsulServer:
    """A Consul with ACLs on (default deny); ``.token`` is its master token. The session's own one."""
    return consul_server


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    yield name
    acl.close_everywhere(name)


@pytest.fixture
def consul_config(consul_server: ConsulServer, prefix: str):
    """The test's own view of Consul: its prefix, with the master token."""
    from meshop.consul.config import ConsulConfig

    return ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)


@pytest.fixture
def role_config(consul_server: ConsulServer, prefix: str):
    """``role_config(role, node=None)``: a ConsulConfig with that role's token for the test's prefix."""

    def make(role: str, node: str | None = None, **kw):
        return acl.config_for(consul_server.addr, prefix, role, node, **kw)

    return make


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


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under ``pytest -n`` (``make test``): tests that share an expensive resource run on one worker, in
    order (``tests/support/groups.py``); the largest units start first, so the fleet's chain of tests
    does not end the run alone."""
    from xdist.scheduler import LoadScopeScheduling

    from tests.support.groups import unit_of

    class SharedResourceScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return SharedResourceScheduling(config, log)  # type: ignore[arg-type]
