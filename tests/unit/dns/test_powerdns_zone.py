"""PowerDNS's zone answer as hostile input: every malformed, oversized or out-of-zone answer fails the
read with a reason (nothing is written on a read that failed); odd names are skipped; a good answer
becomes NameStates with both TTLs."""

from __future__ import annotations

import json

import pytest

from meshop.dns.plan import NameState
from meshop.dns.powerdns_zone import MAX_RECORDS, parse_zone, server_error

Z = "example.test"


def rr(name: str, rdtype: str, *contents: str, ttl: int = 60) -> dict:
    return {"name": name, "type": rdtype, "ttl": ttl, "records": [{"content": c, "disabled": False} for c in contents]}


def body(*rrsets: object) -> bytes:
    return json.dumps({"name": f"{Z}.", "rrsets": list(rrsets)}).encode()


def test_a_good_answer() -> None:
    got = parse_zone(
        body(
            rr("WEB.example.test.", "A", "192.0.2.1", "192.0.2.2", ttl=30),
            rr("web.example.test.", "AAAA", "2001:db8::1", ttl=30),
            rr("web.example.test.", "TXT", '"v=spf1 -all"', ttl=3600),
            rr("web.example.test.", "MX", "10 mail.example.test."),
            rr("alias.example.test.", "CNAME", "web.example.test."),
            rr("example.test.", "SOA", "a. b. 1 2 3 4 5"),
            rr("odd\\032name.example.test.", "A", "192.0.2.9"),  # not a plain name: skipped
        ),
        Z,
    )
    assert got == {
        "web.example.test": NameState(
            "web.example.test", ("192.0.2.1", "192.0.2.2"), ("2001:db8::1",), 30, ('"v=spf1 -all"',), False, 3600
        ),
        "alias.example.test": NameState("alias.example.test", cname=True),
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b'{"rrsets": {}}', "no rrsets list"),
        (b"[]", "no rrsets list"),
        (body("x"), r"rrsets\[0\] is not an object"),
        (body(rr("web.example.test", "A", "192.0.2.1")), "not a DNS name with a final dot"),
        (body(rr("web.example.org.", "A", "192.0.2.1")), "outside zone example.test"),
        (body(rr("example.test.evil.", "A", "192.0.2.1")), "outside zone"),
        (body(rr("web.example.test.", "a; rm", "192.0.2.1")), "type is not a record type"),
        (body(rr("web.example.test.", "A", "192.0.2.1", ttl=-1)), "ttl is not a TTL"),
        (body({**rr("web.example.test.", "A", "192.0.2.1"), "ttl": True}), "ttl is not a TTL"),
        (body({**rr("web.example.test.", "A", "192.0.2.1"), "ttl": "60"}), "ttl is not a TTL"),
        (body({**rr("web.example.test.", "A"), "records": "192.0.2.1"}), "records is not a list"),
        (body(rr("web.example.test.", "A", *["192.0.2.1"] * (MAX_RECORDS + 1))), "records is not a list"),
        (body({**rr("web.example.test.", "A"), "records": [{"content": 7}]}), r"records\[0\].content"),
        (body(rr("web.example.test.", "TXT", "x" * 5000)), r"records\[0\].content"),
        (body(rr("web.example.test.", "A", "evil.example.org")), "not an address"),
        (body(rr("web.example.test.", "A", "2001:db8::1")), "other family"),
        (body(rr("web.example.test.", "AAAA", "192.0.2.1")), "other family"),
        (
            body(rr("web.example.test.", "A", "192.0.2.1"), rr("web.example.test.", "A", "192.0.2.2")),
            "listed twice",
        ),
        (b" " * (16 * 1024 * 1024 + 1), "larger than"),
    ],
    ids=[
        "html",
        "not-utf8",
        "deeply-nested",
        "rrsets-not-list",
        "top-level-list",
        "rrset-not-object",
        "no-final-dot",
        "other-zone",
        "suffix-trick",
        "bad-type",
        "negative-ttl",
        "bool-ttl",
        "string-ttl",
        "records-not-list",
        "too-many-records",
        "content-not-string",
        "content-too-long",
        "a-not-an-address",
        "a-holds-v6",
        "aaaa-holds-v4",
        "duplicate-rrset",
        "oversized",
    ],
)
def test_a_hostile_answer_fails_the_read_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_zone(raw, Z)


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"error": "Could not find domain \'x.\'"}', "Could not find domain 'x.'"),
        (b'{"error": "bad\\u001b[31mred\\nline"}', "bad [31mred line"),
        (b"<h1>Bad Gateway</h1>" + b"x" * 500, "<h1>Bad Gateway</h1>" + "x" * 180),
        (b'{"error": 5}', '{"error": 5}'),
    ],
    ids=["pdns-error", "control-chars", "html-bounded", "error-not-text"],
)
def test_the_server_s_words_are_printable_and_bounded(raw: bytes, said: str) -> None:
    assert server_error(raw) == said
