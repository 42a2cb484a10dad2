"""A real BIND9 per test (its own folder, free loopback port, stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.bind_server import BindServer

FOREIGN_RECORDS = 'foreign IN A 192.0.2.9\nspf IN TXT "v=spf1 -all"\nalias IN CNAME foreign\n'


@pytest.fixture
def bind(tmp_path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "named").start(extra_records=FOREIGN_RECORDS)
    try:
        yield server
    finally:
        server.stop()
