"""A real BIND9 or PowerDNS per test (its own folder, free loopback ports, stopped by PID), with foreign
records (tests/support/dns_zone.py) at and around the names meshop manages; ``served_zone`` is either,
with its provider, for the tests every provider must pass (contract.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from meshop.dns.powerdns import PowerDnsProvider, PowerDnsSettings
from meshop.dns.provider import Provider
from meshop.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from tests.support.bind_server import ZONE, BindServer
from tests.support.dns_zone import Records, zone_file_lines
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


def rfc2136_provider(bind: BindServer, key: str | None = None, secret: str | None = None) -> Rfc2136Provider:
    return Rfc2136Provider(
        Rfc2136Settings("127.0.0.1", bind.port, bind.zone, key or bind.key_name, secret or bind.secret, timeout=3)
    )


def powerdns_provider(pdns: PdnsServer, key: str | None = None, zone: str | None = None) -> PowerDnsProvider:
    return PowerDnsProvider(PowerDnsSettings(pdns.api_url, zone or pdns.zone, key or pdns.api_key, timeout=5))


class ServedZone(NamedTuple):
    """A provider, its zone and ``records()`` read back from the server (AXFR)."""

    provider: Provider
    zone: str
    records: Callable[[], Records]


@pytest.fixture(params=["rfc2136", "powerdns"])
def served_zone(request: pytest.FixtureRequest) -> ServedZone:
    """Each provider against its real server, in turn: one contract for both (contract.py)."""
    if request.param == "rfc2136":
        bind = request.getfixturevalue("bind")
        return ServedZone(rfc2136_provider(bind), bind.zone, bind.records)
    pdns = request.getfixturevalue("pdns")
    return ServedZone(powerdns_provider(pdns), pdns.zone, pdns.records)
