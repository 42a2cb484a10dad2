"""A real BIND9 or PowerDNS per test (its own folder, free loopback ports, stopped by PID), with foreign
records (tests/support/dns_zone.py) at and around the names meshop manages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.bind_server import ZONE, BindServer
from tests.support.dns_zone import zone_file_lines
from tests.support.pdns_server import PdnsServer


@pytest.fixture
def bind(tmp_path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "named").start(extra_records=zone_file_lines(ZONE))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pdns(tmp_path) -> Iterator[PdnsServer]:
    server = PdnsServer(tmp_path / "pdns").start()
    try:
        yield server
    finally:
        server.stop()
