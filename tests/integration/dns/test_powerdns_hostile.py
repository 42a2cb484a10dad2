"""The PowerDNS provider against a server that answers garbage (a stub: the only place these tests do not
use the real pdns_server, because a real one never misbehaves on demand). Whatever it answers, the read
fails with a named reason, no PATCH is sent, the API key goes nowhere but that server (no redirect
followed, no proxy from the environment) and is in no message; a server that never answers costs the
configured timeout, not more."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from meshop.dns import powerdns
from meshop.dns.plan import Change
from meshop.dns.powerdns import PowerDnsProvider, PowerDnsSettings
from meshop.dns.provider import DnsError

KEY = "the-api-key-0123456789"
ZONE = "example.test"
Answer = Callable[[], tuple[int, dict[str, str], bytes]]


class Stub:
    """A loopback HTTP server answering every request with ``answer()``; it records what it was sent."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, X-API-Key
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                stub.requests.append((self.command, self.path, self.headers.get("X-API-Key")))
                status, headers, data = stub.answer()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = handle_one

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs() -> Iterator[Callable[[Answer], Stub]]:
    made: list[Stub] = []

    def make(answer: Answer) -> Stub:
        made.append(Stub(answer))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def provider(url: str, timeout: float = 3.0) -> PowerDnsProvider:
    return PowerDnsProvider(PowerDnsSettings(url, ZONE, KEY, timeout=timeout))


CHANGE = Change("create", f"web.{ZONE}", ("192.0.2.1",), 60)
GOOD_A = {"name": f"web.{ZONE}.", "type": "A", "ttl": 60, "records": [{"content": "192.0.2.1"}]}


@pytest.mark.parametrize(
    ("status", "data", "reason"),
    [
        (200, b"<html>hello</html>", "not a zone meshop can use: not JSON"),
        (200, json.dumps({"rrsets": [{**GOOD_A, "name": "web.evil.org."}]}).encode(), "outside zone"),
        (200, json.dumps({"rrsets": [{**GOOD_A, "records": [{"content": "evil.org"}]}]}).encode(), "not an address"),
        (200, b"x" * 2000, "larger than 1000 bytes"),
        (
            500,
            f'{{"error": "db down; your key was {KEY}"}}'.encode(),
            "failed: HTTP 500: db down; your key was \\*\\*\\*",
        ),
        (422, b'{"error": "RRset web.example.test. IN A: Conflicts with pre-existing RRset"}', "HTTP 422"),
    ],
    ids=["html", "outside-zone", "a-not-address", "oversized", "500-echoes-key", "422"],
)
def test_a_hostile_answer_is_a_named_error_and_nothing_is_sent(
    stubs, monkeypatch, status: int, data: bytes, reason: str
) -> None:
    monkeypatch.setattr(powerdns, "MAX_RESPONSE", 1000)
    stub = stubs(lambda: (status, {"Content-Type": "application/json"}, data))
    p = provider(stub.url)
    with pytest.raises(DnsError, match=reason) as read_error:
        p.read()
    with pytest.raises(DnsError, match=reason) as apply_error:
        p.apply(CHANGE, "prod")
    assert KEY not in str(read_error.value) + str(apply_error.value)
    assert [m for m, _, _ in stub.requests] == ["GET", "GET"]  # apply read again first, and stopped there
    assert stub.requests[0][1] == f"/api/v1/servers/localhost/zones/{ZONE}."


def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else(stubs) -> None:
    elsewhere = stubs(lambda: (200, {}, b'{"rrsets": []}'))
    stub = stubs(lambda: (302, {"Location": elsewhere.url + "/api/v1/servers/localhost/zones/example.test."}, b""))
    with pytest.raises(DnsError, match=r"redirect \(HTTP 302\); not followed"):
        provider(stub.url).read()
    assert elsewhere.requests == []
    assert stub.requests[0][2] == KEY  # the key is sent where it is configured to go, and only there


def test_no_proxy_from_the_environment_sees_the_key(stubs, monkeypatch) -> None:
    proxy = stubs(lambda: (200, {}, b'{"rrsets": []}'))
    stub = stubs(lambda: (200, {}, b'{"rrsets": []}'))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert provider(stub.url).read() == {}
    assert proxy.requests == [] and len(stub.requests) == 1


def test_a_server_that_never_answers_costs_the_timeout() -> None:
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # accepts (backlog), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        p = provider(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        start = time.monotonic()
        with pytest.raises(DnsError, match="reading the zone failed: TimeoutError"):
            p.read()
        assert time.monotonic() - start < 2.0
    finally:
        listener.close()


@pytest.mark.parametrize(
    "name", ["evil.example.org", "example.test.evil.org", "notexample.test"], ids=["other", "suffix-trick", "no-dot"]
)
def test_a_change_outside_the_zone_is_refused_unsent(stubs, name: str) -> None:
    stub = stubs(lambda: (200, {}, b'{"rrsets": []}'))
    with pytest.raises(DnsError, match=r"outside zone example.test; not sent"):
        provider(stub.url).apply(Change("create", name, ("203.0.113.1",), 60), "prod")
    assert stub.requests == []


def test_an_update_without_meshop_s_mark_as_read_is_refused_unpatched(stubs) -> None:
    stub = stubs(lambda: (200, {}, json.dumps({"rrsets": [GOOD_A]}).encode()))
    with pytest.raises(DnsError, match="without meshop's mark as read; not sent"):
        provider(stub.url).apply(Change("update", f"web.{ZONE}", ("192.0.2.2",), 60, ("192.0.2.1",)), "prod")
    assert "PATCH" not in [m for m, _, _ in stub.requests]
