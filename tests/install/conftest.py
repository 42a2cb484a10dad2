"""The end-to-end install test runs only when asked (``make test-install``): it builds a Debian image
(~3 min once), boots three systemd hosts and installs Debian packages from the mirror, minutes that
``make test`` does not have."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MESHOP_INSTALL_E2E") == "1":
        return
    skip = pytest.mark.skip(reason="the install test runs with `make test-install` (MESHOP_INSTALL_E2E=1)")
    for item in items:
        if "tests/install/test_install_e2e" in item.nodeid:
            item.add_marker(skip)
