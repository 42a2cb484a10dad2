"""Bind policy, password hashes, sessions, CSRF and the login throttle of the dashboard."""

from __future__ import annotations

import threading

import pytest

from meshop.dashboard import auth


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("100.64.1.2", False),
        ("dash.example.com", False),
        ("localhost.attacker.example", False),
    ],
    ids=[
        "v4",
        "v4-other",
        "v6",
        "v6-bracketed",
        "localhost",
        "any-v4",
        "any-v6",
        "empty",
        "private",
        "tailnet",
        "name",
        "lookalike",
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("localhost", True),
        ("127.0.0.1:9999", False),
        ("evil.example:8080", False),
        ("evil.example", False),
        (None, False),
        ("", False),
        ("127.0.0.1:8080@evil", False),
    ],
    ids=[
        "v4",
        "localhost",
        "v6",
        "no-port",
        "other-port",
        "rebinding",
        "rebinding-no-port",
        "missing",
        "empty",
        "junk",
    ],
)
def test_host_allowed(header: str | None, ok: bool) -> None:
    assert auth.host_allowed(header, 8080) is ok


def test_password_hash_round_trip_and_wrong_password() -> None:
    line = auth.hash_password("correct horse battery", salt=b"0123456789abcdef")
    assert line.startswith("scrypt$16384$8$1$")
    parsed = auth.PasswordHash.parse(line + "\n")
    assert parsed.verify("correct horse battery")
    assert not parsed.verify("correct horse batterY")
    assert auth.hash_password("x") != auth.hash_password("x")  # salted


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "not scrypt"),
        ("md5$abc", "not scrypt"),
        ("scrypt$1024$8$1$MDEyMzQ1Njc=$MDEyMzQ1Njc4OWFiY2RlZg==", "weak"),
        ("scrypt$16384$8$1$!!$!!", "base64"),
        ("scrypt$16384$8$1$MDE=$MDEyMzQ1Njc4OWFiY2RlZg==", "too short"),
        # accepted before, then every sign-in raised in scrypt (memory limit) and got no answer at all
        ("scrypt$1048576$8$1$MDEyMzQ1Njc=$MDEyMzQ1Njc4OWFiY2RlZg==", "more than 256 MiB"),
        ("scrypt$1099511627776$8$1$MDEyMzQ1Njc=$MDEyMzQ1Njc4OWFiY2RlZg==", "more than 256 MiB"),
    ],
    ids=["empty", "other-scheme", "weak-n", "not-base64", "short-salt", "n-2-20", "n-2-40"],
)
def test_bad_password_file_names_the_file_and_reason(line: str, reason: str) -> None:
    with pytest.raises(auth.AuthConfigError, match=f"^pw.txt: .*{reason}.*--hash-password"):
        auth.PasswordHash.parse(line, "pw.txt")


def test_sessions_expire_and_are_bounded() -> None:
    sessions = auth.LoginSessions(ttl=10, limit=2)
    a = sessions.create("password", now=100)
    assert sessions.get(a.sid, 109) == a
    assert sessions.get(a.sid, 110) is None  # expired, and gone
    b, c, d = (sessions.create("u", now=200) for _ in range(3))
    assert sessions.get(b.sid, 201) is None and sessions.get(d.sid, 201) == d  # the oldest went
    sessions.drop(d.sid)
    assert sessions.get(d.sid, 201) is None
    assert sessions.get(None, 0) is None and sessions.get("forged", 0) is None
    assert len({c.sid, c.csrf, d.sid, d.csrf}) == 4


def test_cookie_is_httponly_samesite_strict_and_parsed_back() -> None:
    session = auth.Session("abc", "csrf", "u", expires=160)
    header = auth.set_cookie(session, now=100)
    assert header == "meshop_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
    assert auth.session_id("other=1; meshop_session=abc") == "abc"
    assert auth.session_id('bad"cookie') is None and auth.session_id(None) is None


def test_over_tls_the_cookie_is_secure_under_the_host_prefix_and_only_that_one_counts() -> None:
    session = auth.Session("abc", "csrf", "u", expires=160)
    header = auth.set_cookie(session, now=100, secure=True)
    assert header == "__Host-meshop_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
    assert auth.clear_cookie(secure=True).endswith("; Max-Age=0; Secure")
    # a cookie set by another host of the domain (no prefix) does not stand in for the session over TLS
    assert auth.session_id("meshop_session=tossed", secure=True) is None
    assert auth.session_id("meshop_session=tossed; __Host-meshop_session=abc", secure=True) == "abc"


PUBLIC = auth.HostPolicy(True, 8080, frozenset({"dashboard.example.com"}))
TAILNET = auth.HostPolicy(False, 8080, frozenset({"dashboard.example.com"}))
OPEN_BEYOND_LOOPBACK = auth.HostPolicy(False, 8080)


@pytest.mark.parametrize(
    ("policy", "header", "ok"),
    [
        (PUBLIC, "dashboard.example.com", True),
        (PUBLIC, "dashboard.example.com:8443", True),  # the gateway's HTTPS port is the visitor's
        (PUBLIC, "DASHBOARD.example.com", True),
        (PUBLIC, "127.0.0.1:8080", True),
        (PUBLIC, "evil.example.com", False),
        (PUBLIC, "dashboard.example.com.evil.org", False),
        (PUBLIC, "10.0.0.5:8080", False),  # loopback listener: only loopback names besides the public one
        (PUBLIC, None, False),
        (TAILNET, "100.64.0.5:8080", True),
        (TAILNET, "[fd7a::5]:8080", True),
        (TAILNET, "rebind.attacker.org:8080", False),
        (OPEN_BEYOND_LOOPBACK, "anything.org", True),  # as before: beyond loopback a login is required
    ],
    ids=[
        "public",
        "public-port",
        "public-case",
        "loopback",
        "other-host",
        "suffix",
        "ip-on-loopback",
        "missing",
        "tailnet-ip",
        "tailnet-v6",
        "tailnet-rebind",
        "no-public-hosts",
    ],
)
def test_host_policy(policy: auth.HostPolicy, header: str | None, ok: bool) -> None:
    assert policy.allowed(header) is ok


@pytest.mark.parametrize(
    ("host", "proto", "tls"),
    [
        ("dashboard.example.com", None, True),  # only the gateway's TLS serves the public host
        ("dashboard.example.com:8443", "http", True),
        ("127.0.0.1:8080", "https", True),
        ("127.0.0.1:8080", "http, https", True),  # the last proxy's word
        ("127.0.0.1:8080", "https, http", False),
        ("127.0.0.1:8080", None, False),
    ],
)
def test_over_tls(host: str, proto: str | None, tls: bool) -> None:
    assert PUBLIC.over_tls(host, proto) is tls


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Forwarded-For": "1.2.3.4"}, True),
        ({"Forwarded": "for=1.2.3.4"}, True),
        ({"Via": "1.1 caddy"}, True),
        ({"X-Forwarded-Proto": ""}, True),
        ({"Host": "127.0.0.1"}, False),
    ],
)
def test_proxied(headers: dict[str, str], expected: bool) -> None:
    assert auth.proxied(headers) is expected


@pytest.mark.parametrize(
    ("expected", "got", "ok"),
    [("t", "t", True), ("t", "u", False), ("t", None, False), ("", "", False), ("t", "", False)],
    ids=["same", "other", "missing", "no-session-token", "empty"],
)
def test_csrf(expected: str, got: str | None, ok: bool) -> None:
    assert auth.csrf_ok(expected, got) is ok


def test_throttle_counts_a_try_before_it_is_checked_and_refuses_past_the_limit() -> None:
    throttle = auth.Throttle(limit=3, window=60)
    assert [throttle.reserve(t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert throttle.blocked(30)
    assert throttle.reserve(60.5)  # the first try left the window
    assert not throttle.reserve(60.5)


def test_a_successful_try_is_refunded() -> None:
    throttle = auth.Throttle(limit=2, window=60)
    assert throttle.reserve(0) and throttle.reserve(1)
    throttle.refund()
    assert throttle.reserve(2) and not throttle.reserve(3)


def test_concurrent_tries_get_exactly_the_limit() -> None:
    """Before: blocked() then failed() after the check, so tries racing past the check were all made."""
    throttle = auth.Throttle(limit=10, window=60)
    start = threading.Barrier(60)
    granted: list[bool] = []

    def attempt() -> None:
        start.wait()
        granted.append(throttle.reserve(0, "10.0.0.66"))

    threads = [threading.Thread(target=attempt) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert (granted.count(True), granted.count(False)) == (10, 50)


def test_throttle_counts_per_client_address() -> None:
    """Before: one count for everybody, so anyone reaching the port locked every user out."""
    throttle = auth.Throttle(limit=3, window=60)
    for t in range(3):
        assert throttle.reserve(t, "10.0.0.66")
    assert not throttle.reserve(5, "10.0.0.66")
    assert throttle.reserve(5, "10.0.0.7")


def test_throttle_remembers_a_bounded_number_of_addresses() -> None:
    throttle = auth.Throttle(limit=1, window=60, clients=2)
    for client in ("a", "b", "c"):
        throttle.reserve(0, client)
    assert not throttle.blocked(1, "a") and throttle.blocked(1, "b") and throttle.blocked(1, "c")


def test_sessions_drop_expired_ones_before_the_oldest_live_one() -> None:
    sessions = auth.LoginSessions(ttl=10, limit=2)
    sessions.create("a", now=0)
    live = sessions.create("b", now=5)
    new = sessions.create("c", now=11)  # a expired: it goes, b stays
    assert len(sessions) == 2 and sessions.get(live.sid, 12) == live and sessions.get(new.sid, 12) == new


@pytest.mark.parametrize(
    ("policy", "peer", "headers", "expected"),
    [
        (PUBLIC, "127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}, "loopback for 203.0.113.7"),
        (PUBLIC, "127.0.0.9", {"X-Forwarded-For": "1.1.1.1, 203.0.113.7"}, "loopback for 203.0.113.7"),
        (PUBLIC, "127.0.0.1", {"X-Forwarded-For": "2001:db8:1:2::7"}, "loopback for 2001:db8:1:2::/64"),
        (PUBLIC, "127.0.0.1", {}, "127.0.0.1"),
        (PUBLIC, "100.64.0.9", {"X-Forwarded-For": "203.0.113.7"}, "100.64.0.9"),  # not from beside it
        (OPEN_BEYOND_LOOPBACK, "127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"),  # not published
    ],
    ids=["gateway", "last-entry", "ipv6-visitor", "direct", "remote-peer", "unpublished"],
)
def test_the_throttle_counts_the_visitor_behind_the_gateway(
    policy: auth.HostPolicy, peer: str, headers: dict[str, str], expected: str
) -> None:
    assert auth.visitor(peer, headers, policy) == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("127.0.0.1", "loopback"),
        ("127.45.6.7", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.9", "loopback"),
        ("10.0.0.66", "10.0.0.66"),
        ("::ffff:10.0.0.66", "10.0.0.66"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
    ],
)
def test_client_key_groups_what_one_sender_can_vary(address: str, key: str) -> None:
    assert auth.client_key(address) == key


def test_every_loopback_source_shares_one_count() -> None:
    """Before: a local user sent each guess from another of 127.0.0.0/8 and was never throttled."""
    throttle = auth.Throttle(limit=3, window=60)
    assert [throttle.reserve(0, f"127.0.0.{i}") for i in (1, 2, 3, 4)] == [True, True, True, False]
    assert not throttle.reserve(1, "::1") and throttle.blocked(1, "127.9.9.9")
    assert throttle.reserve(1, "10.0.0.7")  # another host still signs in
    throttle.refund("127.0.0.200")  # a success from any loopback source gives back the shared count's try
    assert throttle.reserve(2, "127.0.0.1")
