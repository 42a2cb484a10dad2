"""What every DNS provider must do against its real server: records after each transition, and every
foreign record (tests/support/dns_zone.py) keeps its rdata and TTL, at and around the managed names.

A provider test calls these with its provider, the zone and a ``records()`` that reads the zone from
the server (AXFR), so BIND (RFC 2136) and PowerDNS (HTTP API) are held to one contract.
"""

from __future__ import annotations

from collections.abc import Callable

from meshop.dns.plan import DnsPlan, ownership_text, plan
from meshop.dns.provider import Provider
from tests.support.dns_zone import Records, expected_foreign, foreign_part

OWNER = "prod"
MARK = ownership_text(OWNER)


def converge(p: Provider, desired: dict[str, list[str]], ttl: int = 60) -> DnsPlan:
    result = plan(desired, p.read(), OWNER, ttl)
    for change in result.changes:
        p.apply(change, OWNER)
    return result


def meshop_part(records: Records) -> Records:
    """What meshop wrote: A/AAAA at web and api, and the mark names."""
    return {
        k: v
        for k, v in records.items()
        if k[0].startswith("_meshop-owner.") or (k[0] in ("web", "api") and k[1] in ("A", "AAAA"))
    }


def transitions_keep_foreign_records(p: Provider, zone: str, records: Callable[[], Records]) -> None:
    """create, update (second gateway, new TTL), failover (one gateway gone), delete: after each, meshop's
    records are exactly as wanted and every foreign record set is as before, TTL included."""
    before = foreign_part(records())
    assert expected_foreign(zone).items() <= before.items(), "the foreign records were not set up"
    web, api = f"web.{zone}", f"api.{zone}"
    mark = (60, (MARK,))

    converge(p, {web: ["192.0.2.1"], api: ["192.0.2.1", "2001:db8::1"]})  # create
    assert meshop_part(records()) == {
        ("web", "A"): (60, ("192.0.2.1",)),
        ("api", "A"): (60, ("192.0.2.1",)),
        ("api", "AAAA"): (60, ("2001:db8::1",)),
        ("_meshop-owner.web", "TXT"): mark,
        ("_meshop-owner.api", "TXT"): mark,
    }
    assert foreign_part(records()) == before

    converge(p, {web: ["192.0.2.1", "192.0.2.2"], api: ["192.0.2.1", "192.0.2.2"]}, ttl=30)  # update
    assert meshop_part(records()) == {
        ("web", "A"): (30, ("192.0.2.1", "192.0.2.2")),
        ("api", "A"): (30, ("192.0.2.1", "192.0.2.2")),
        ("_meshop-owner.web", "TXT"): mark,
        ("_meshop-owner.api", "TXT"): mark,
    }
    assert foreign_part(records()) == before

    converge(p, {web: ["192.0.2.2"], api: ["192.0.2.2"]}, ttl=30)  # failover: the first gateway is gone
    assert meshop_part(records())[("web", "A")] == (30, ("192.0.2.2",))
    assert foreign_part(records()) == before

    converge(p, {web: ["192.0.2.2"]}, ttl=30)  # api's route removed: withdrawn
    converge(p, {}, ttl=30)  # delete
    assert meshop_part(records()) == {}
    assert foreign_part(records()) == before
    assert plan({}, p.read(), OWNER, 30).changes == ()


def wanted_foreign_names_are_conflicts(p: Provider, zone: str, records: Callable[[], Records]) -> None:
    """Names holding foreign addresses or a CNAME are reported, never written; nothing at all changes."""
    before = records()
    result = converge(p, {f"foreign.{zone}": ["192.0.2.1"], f"alias.{zone}": ["192.0.2.1"]})
    assert result.changes == () and len(result.conflicts) == 2
    after = records()
    assert {k: v for k, v in after.items() if k[1] != "SOA"} == {k: v for k, v in before.items() if k[1] != "SOA"}


def legacy_mark_is_moved_once(p: Provider, zone: str, records: Callable[[], Records]) -> None:
    """``old.<zone>`` holds an earlier meshop's mark inside its own TXT set, beside an SPF (TTL 3600), and
    an A (TTL 60), made by the test before: one pass moves the mark to the mark name, the SPF keeps its
    record and TTL, nothing else changes, and the next pass sends nothing."""
    before = foreign_part(records())
    result = converge(p, {f"old.{zone}": ["192.0.2.1"]})
    assert [c.kind for c in result.changes] == ["update"] and "mark moved" in result.changes[0].describe()
    after = records()
    assert after[("old", "TXT")] == (3600, ('"v=spf1 -all"',))
    assert after[("_meshop-owner.old", "TXT")] == (60, (MARK,))
    assert after[("old", "A")] == (60, ("192.0.2.1",))
    assert {k: v for k, v in foreign_part(after).items() if k[0] != "old"} == {
        k: v for k, v in before.items() if k[0] != "old"
    }
    assert converge(p, {f"old.{zone}": ["192.0.2.1"]}).changes == ()


def wildcard_gets_its_own_mark_name(p: Provider, zone: str, records: Callable[[], Records]) -> None:
    """``*.<zone>`` (``records: wildcard``) is marked at ``_meshop-owner._wildcard.<zone>`` (no ``*`` inside a
    name), moved and withdrawn like any name; the foreign records keep rdata and TTL throughout."""
    before = foreign_part(records())
    converge(p, {f"*.{zone}": ["192.0.2.1"]})
    got = records()
    assert got[("*", "A")] == (60, ("192.0.2.1",))
    assert got[("_meshop-owner._wildcard", "TXT")] == (60, (MARK,))
    converge(p, {f"*.{zone}": ["192.0.2.2"]})
    assert records()[("*", "A")] == (60, ("192.0.2.2",))
    converge(p, {})
    got = records()
    assert ("*", "A") not in got and ("_meshop-owner._wildcard", "TXT") not in got
    assert {k: v for k, v in foreign_part(got).items() if k[0] != "*"} == before
