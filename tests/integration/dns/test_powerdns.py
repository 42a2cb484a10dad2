"""The PowerDNS provider against a real pdns_server (sqlite3 backend, HTTP API), beyond the contract it
shares with RFC 2136 (test_provider_contract.py): a legacy mark moved, a record made after the read
wins, a wrong API key and a missing zone refused by name with no change and the key in no message."""

from __future__ import annotations

import pytest

from meshop.dns.plan import Change, plan
from meshop.dns.provider import DnsRefused
from tests.integration.dns.conftest import powerdns_provider as provider
from tests.integration.dns.contract import (
    MARK,
    OWNER,
    converge,
    legacy_mark_is_moved_once,
)
from tests.support.pdns_server import PdnsServer


def test_a_legacy_mark_at_the_name_is_moved_once_and_the_foreign_txt_keeps_its_ttl(pdns: PdnsServer) -> None:
    z = f"{pdns.zone}."
    old = [
        {"name": f"old.{z}", "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": MARK}, {"content": '"v=spf1 -all"'}]},
        {"name": f"old.{z}", "type": "A", "ttl": 60, "changetype": "REPLACE", "records": [{"content": "192.0.2.1"}]},
    ]  # fmt: skip
    pdns.api("PATCH", f"/api/v1/servers/localhost/zones/{z}", {"rrsets": old})
    legacy_mark_is_moved_once(provider(pdns), pdns.zone, pdns.records)


@pytest.mark.parametrize(
    ("name", "rdtype", "content"),
    [("new", "A", "198.51.100.7"), ("_meshop-owner.new", "TXT", '"heritage=meshop,meshop/owner=staging"')],
    ids=["address-at-the-name", "another-owner-s-mark"],
)
def test_a_record_made_after_the_read_wins_over_a_create(
    pdns: PdnsServer, name: str, rdtype: str, content: str
) -> None:
    p = provider(pdns)
    stale = plan({f"new.{pdns.zone}": ["192.0.2.1"]}, p.read(), OWNER, 60)
    z = f"{pdns.zone}."
    theirs = {"name": f"{name}.{z}", "type": rdtype, "ttl": 300, "changetype": "REPLACE"}
    theirs["records"] = [{"content": content}]
    pdns.api("PATCH", f"/api/v1/servers/localhost/zones/{z}", {"rrsets": [theirs]})
    before = pdns.records()
    with pytest.raises(DnsRefused, match="changed since it was read; not sent"):
        p.apply(stale.changes[0], OWNER)
    assert pdns.records() == before
    assert before[(name, rdtype)] == (300, (content,))


def test_a_wrong_api_key_is_refused_by_name_with_no_change(pdns: PdnsServer) -> None:
    converge(provider(pdns), {f"web.{pdns.zone}": ["192.0.2.1"]})
    before = pdns.records()
    wrong = "not-the-key-" + pdns.api_key[::-1]
    bad = provider(pdns, key=wrong)
    with pytest.raises(DnsRefused, match=r"rejected the API key \(HTTP 401\)") as refused:
        bad.read()
    with pytest.raises(DnsRefused, match=r"rejected the API key \(HTTP 401\)") as refused_apply:
        bad.apply(Change("create", f"evil.{pdns.zone}", ("203.0.113.66",), 60), OWNER)
    for message in (str(refused.value), str(refused_apply.value)):
        assert wrong not in message and pdns.api_key not in message
    assert pdns.records() == before


def test_a_missing_zone_is_refused_by_name(pdns: PdnsServer) -> None:
    p = provider(pdns, zone="missing.test")
    with pytest.raises(DnsRefused, match=r"zone missing\.test \(server localhost\) not found \(HTTP 404\)"):
        p.read()
