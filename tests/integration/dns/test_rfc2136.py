"""The RFC 2136 provider against a real BIND9, beyond the contract it shares with PowerDNS
(test_provider_contract.py): a legacy ownership mark moved, a record made after the read wins, a wrong
or unauthorised TSIG key refused with a clear error and no change."""

from __future__ import annotations

import dns.query
import dns.update
import pytest

from meshop.dns.plan import Change, plan
from meshop.dns.provider import DnsRefused
from tests.integration.dns.conftest import rfc2136_provider as provider
from tests.integration.dns.contract import (
    MARK,
    OWNER,
    converge,
    legacy_mark_is_moved_once,
)
from tests.support.bind_server import BindServer


def test_a_legacy_mark_at_the_name_is_moved_once_and_the_foreign_txt_keeps_its_ttl(bind: BindServer) -> None:
    """An earlier meshop's mark inside the name's own TXT set (beside an SPF, TTL 3600): one pass moves
    it to the mark name; the SPF keeps record and TTL; the next pass changes nothing (contract.py)."""
    p = provider(bind)
    old = dns.update.UpdateMessage(bind.zone + ".", keyring=p.key)
    old.add(f"old.{bind.zone}.", 3600, "TXT", MARK)
    old.add(f"old.{bind.zone}.", 3600, "TXT", '"v=spf1 -all"')
    old.add(f"old.{bind.zone}.", 60, "A", "192.0.2.1")
    assert dns.query.tcp(old, "127.0.0.1", port=bind.port, timeout=3).rcode() == 0
    legacy_mark_is_moved_once(p, bind.zone, bind.records)


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
