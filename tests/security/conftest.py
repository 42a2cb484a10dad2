"""Attacks on the agent's trust boundaries, each against real Consul, Docker and agents.

The agent suite's fixtures are reused (one node name per test, teardown by that node's labels).
"""

from __future__ import annotations

from tests.integration.agent.conftest import engine, node, start_agent  # noqa: F401 - fixtures
from tests.integration.cli.conftest import meshop  # noqa: F401 - fixture
