"""Attacks on meshop's trust boundaries, each against real components.

The agent suite's fixtures are reused (one node name per test, teardown by that node's labels), and the
CLI suite's ``meshop``; ``fleet`` is a controller + gateway cluster run as a fleet runs it (fleet.py).
"""

from __future__ import annotations

from tests.integration.agent.conftest import engine, node, start_agent  # noqa: F401 - fixtures
from tests.integration.cli.conftest import meshop  # noqa: F401 - fixture
from tests.security.fleet import fleet, honest_server  # noqa: F401 - fixtures
from tests.support.users import other_user  # noqa: F401 - fixture
