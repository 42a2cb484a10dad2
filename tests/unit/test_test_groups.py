"""The rule that keeps tests sharing a fixture on one xdist worker (tests/support/groups.py)."""

from __future__ import annotations

import pytest

from tests.support.groups import unit_of


@pytest.mark.parametrize(
    ("nodeid", "unit"),
    [
        ("tests/fleet/test_faults.py::test_x", "fleet"),  # the session fleet's tests share one worker
        ("tests/fleet/test_rebalance.py::test_x", "fleet"),
        ("tests/fleet/test_control_plane.py::test_x", "tests/fleet/test_control_plane.py"),  # a fleet of its own
        ("tests/fleet/test_gateway_dns.py::test_x", "tests/fleet/test_gateway_dns.py"),
        ("tests/unit/test_test_groups.py::test_x", "tests/unit/test_test_groups.py::test_x"),  # alone
    ],
)
def test_units_of_work(nodeid: str, unit: str) -> None:
    assert unit_of(nodeid) == unit
