"""One real fleet per test session (tests/support/fleet.py): 3 nodes and a gateway in network namespaces
of its own, on a subnet of its own, torn down at the end. Every fault test leaves it whole again."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.fleet import Fleet, scratch_fleet, wait_for


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root (network namespaces, its own Docker engines)")
    for binary in ("nsenter", "dockerd", "ip"):
        if not shutil.which(binary):
            pytest.fail(f"{binary} is missing: run `make setup`")
    with scratch_fleet("mfleet-") as running:
        yield running


@pytest.fixture
def service(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[str]:
    """A service name of this test's own; deleted afterwards, and its containers awaited gone."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:40]
    yield name
    fleet.cli("delete", "service", name, check=False)
    wait_for(lambda: not fleet.containers(name), 60, f"the containers of {name} to go", interval=0.25)
