"""One real fleet per test session (tests/support/fleet.py): 3 nodes and a gateway in network namespaces
of its own, on a subnet of its own, torn down at the end. Every fault test leaves it whole again."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet import Fleet, session_fleet, wait_for


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root (network namespaces, its own Docker engines)")
    for binary in ("nsenter", "dockerd", "ip"):
        if not shutil.which(binary):
            pytest.fail(f"{binary} is missing: run `make setup`")
    # a short root: unix socket paths (engines, Caddy admin) are limited to 108 bytes
    root = Path(tempfile.mkdtemp(prefix="mfleet-", dir="/tmp"))
    try:
        with session_fleet(root) as running:
            yield running
    finally:
        keep = os.environ.get("MESHOP_FLEET_KEEP_LOGS")  # a folder: every member's logs are copied there
        if keep:
            for found in root.glob("*/*.log"):
                target = Path(keep) / found.parent.name / found.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found, target)
        # a complete teardown removes fleet.json; otherwise `python -m tests.support.fleet down --root ROOT`
        if not (root / "fleet.json").exists():
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def service(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[str]:
    """A service name of this test's own; deleted afterwards, and its containers awaited gone."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:40]
    yield name
    fleet.cli("delete", "service", name, check=False)
    wait_for(lambda: not fleet.containers(name), 60, f"the containers of {name} to go", interval=0.25)
