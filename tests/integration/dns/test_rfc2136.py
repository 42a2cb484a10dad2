"""The RFC 2136 provider against a real BIND9: records after each change, foreign records untouched,
a wrong or unauthorised TSIG key refused with a clear error and no change."""

from __future__ import annotations

import pytest

from meshop.dns.plan import Change, plan
from meshop.dns.provider import DnsRefused
from meshop.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from tests.support.bind_server import BindServer

OWNER = "prod"


def provider(bind: BindServer, key: str | None = None, secret: str | None = None) -> Rfc2136Provider:
    return Rfc2136Provider(
        Rfc2136Settings("127.0.0.1", bind.port, bind.zone, key or bind.key_name, secret or bind.secret, timeout=3)
    )


def converge(p: Rfc2136Provider, desired: dict[str, list[str]], ttl: int = 60):
    result = plan(desired, p.read(), OWNER, ttl)
    for change in result.changes:
        p.apply(change, OWNER)
    return result


def foreign_view(bind: BindServer) -> tuple:
    return (bind.query("foreign", "A"), bind.query("spf", "TXT"), bind.query("alias", "CNAME"))


def test_records_follow_each_transition_and_foreign_ones_stay(bind: BindServer) -> None:
    p = provider(bind)
    before = foreign_view(bind)
    web, api = f"web.{bind.zone}", f"api.{bind.zone}"
    converge(p, {web: ["192.0.2.1"], api: ["192.0.2.1", "2001:db8::1"]})
    assert bind.query("web", "A") == ["192.0.2.1"]
    assert bind.query("api", "AAAA") == ["2001:db8::1"]
    assert bind.query("web", "TXT") == ['"heritage=meshop,meshop/owner=prod"']
    assert bind.ttl("web", "A") == 60

    converge(p, {web: ["192.0.2.1", "192.0.2.2"], api: ["192.0.2.2"]}, ttl=30)  # a second gateway; TTL
    assert bind.query("web", "A") == ["192.0.2.1", "192.0.2.2"]
    assert bind.query("api", "A") == ["192.0.2.2"] and bind.query("api", "AAAA") == []
    assert bind.ttl("api", "A") == 30

    converge(p, {web: ["192.0.2.2"]})  # first gateway gone, api's route removed
    assert bind.query("web", "A") == ["192.0.2.2"]
    assert bind.query("api", "A") == [] and bind.query("api", "TXT") == []
    assert foreign_view(bind) == before
    assert plan({web: ["192.0.2.2"]}, p.read(), OWNER, 60).changes == ()


def test_wanted_foreign_names_are_conflicts_not_overwritten(bind: BindServer) -> None:
    p = provider(bind)
    before = foreign_view(bind)
    result = converge(p, {f"foreign.{bind.zone}": ["192.0.2.1"], f"alias.{bind.zone}": ["192.0.2.1"]})
    assert len(result.conflicts) == 2 and result.changes == ()
    assert foreign_view(bind) == before
    converge(p, {f"spf.{bind.zone}": ["192.0.2.1"]})  # beside a foreign TXT: the TXT stays
    converge(p, {})
    assert bind.query("spf", "A") == [] and bind.query("spf", "TXT") == ['"v=spf1 -all"']


def test_a_record_made_after_the_read_wins_over_a_create(bind: BindServer) -> None:
    p = provider(bind)
    stale = plan({f"new.{bind.zone}": ["192.0.2.1"]}, p.read(), OWNER, 60)
    other = provider(bind)
    other.apply(Change("create", f"new.{bind.zone}", ("198.51.100.7",), 300), "someone-else")
    with pytest.raises(DnsRefused, match="YXRRSET"):
        p.apply(stale.changes[0], OWNER)
    assert bind.query("new", "A") == ["198.51.100.7"]


@pytest.mark.parametrize("which", ["wrong-secret", "unauthorised-key"])
def test_wrong_tsig_key_is_refused_with_no_change(bind: BindServer, which: str) -> None:
    converge(provider(bind), {f"web.{bind.zone}": ["192.0.2.1"]})
    bad = (
        provider(bind, secret=bind.other_secret)
        if which == "wrong-secret"
        else provider(bind, key=bind.other_key, secret=bind.other_secret)
    )
    change = Change("create", f"evil.{bind.zone}", ("203.0.113.66",), 60)
    with pytest.raises(DnsRefused) as refused:
        bad.apply(change, OWNER)
    message = str(refused.value)
    assert bind.secret not in message and bind.other_secret not in message
    assert ("BADSIG" in message or "signature" in message) if which == "wrong-secret" else "REFUSED" in message
    if which == "wrong-secret":
        with pytest.raises(DnsRefused, match="refused TSIG key meshop-key"):
            bad.read()
    assert bind.query("evil", "A") == []
    assert bind.query("web", "A") == ["192.0.2.1"]
