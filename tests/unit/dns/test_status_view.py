"""Gateways and DNS in ``meshop status``: rows from registrations, the DNS line from ``status/dns``."""

from __future__ import annotations

from meshop.cli.render import dns_line
from meshop.client.gateways import gateway_rows
from meshop.client.status import StatusReport
from meshop.consul.services import InstanceHealth
from meshop.gateway.presence import gateway_registration, local_target
from meshop.model.records import DnsStatus

NOW = 1_000_000.0


def instance(sid: str, status: str = "passing", address: str = "192.0.2.1") -> InstanceHealth:
    return InstanceHealth(
        "consul-1", sid, {}, status, "" if status == "passing" else "dial tcp: refused", "10.0.0.1", address
    )


def test_gateway_rows_only_gateways_own_and_which_are_in_dns() -> None:
    dns = DnsStatus("rfc2136", "example.com", "gateways", ("g1",), 3)
    rows = gateway_rows(
        [instance("meshop-gateway-g2", "critical", "192.0.2.2"), instance("meshop-gateway-g1"), instance("evil")], dns
    )
    assert [(r.gateway_id, r.address, r.health, r.in_dns) for r in rows] == [
        ("g1", "192.0.2.1", "passing", True),
        ("g2", "192.0.2.2", "critical", False),
    ]


def report(dns: DnsStatus | None) -> StatusReport:
    return StatusReport(NOW, (), (), None, (), dns)


def test_dns_line() -> None:
    ok = DnsStatus("rfc2136", "example.com", "gateways", ("g1", "g2"), 3, NOW - 5, "update web.example.com: ...")
    assert str(dns_line(report(ok))) == (
        "DNS (rfc2136, zone example.com): 3 name(s) -> gateways g1, g2; last update 5s ago: update web.example.com: ..."
    )
    direct = DnsStatus("rfc2136", "example.com", "direct", (), 3, last_error="refused TSIG key k (BADSIG)")
    text = str(dns_line(report(direct)))
    assert "no gateway is healthy: direct to the nodes" in text and "DNS error: refused TSIG key k" in text
    assert "not managed" in str(dns_line(report(DnsStatus())))
    assert "dns" not in report(None).to_dict()


def test_gateway_registration_checks() -> None:
    reg = gateway_registration("g1", "192.0.2.1", "0.0.0.0:443", "127.0.0.1:9466", interval=0.5)
    assert (reg.service_id, reg.name, reg.address, reg.port) == (
        "meshop-gateway-g1",
        "meshop-gateway",
        "192.0.2.1",
        443,
    )
    assert [c.as_api().get("HTTP") or c.as_api().get("TCP") for c in reg.checks] == [
        "http://127.0.0.1:9466/readyz",
        "127.0.0.1:443",
    ]
    assert reg.checks[0].interval == "500ms"
    assert local_target("[::]:443") == "[::1]:443"
