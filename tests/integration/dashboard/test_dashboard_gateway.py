"""The dashboard published through the gateway (issue 27 item 4), for real: ``meshop gateway run`` with
its own Caddy and the internal CA, a Gateway document naming the dashboard host, a dashboard with
``--public-host`` and a password, a Consul with ACLs. The attacks are in
tests/security/test_dashboard_gateway.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from meshop.dashboard.auth import HSTS, SECURE_COOKIE
from tests.support.consul_server import ConsulServer
from tests.support.published_dashboard import Published, open_server, published_dashboard, serve_dashboard


@pytest.fixture(scope="module")
def published(consul_server: ConsulServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    with published_dashboard(consul_server, f"t-{secrets.token_hex(4)}", tmp_path_factory.mktemp("dg")) as found:
        yield found


def test_signed_in_over_the_gateways_tls_with_a_secure_cookie_and_hsts(published: Published) -> None:
    record = published.publication()
    assert record is not None and record.published and record.host == published.host
    first = published.request("/")
    assert first.status == 303 and first.headers["Location"] == "/login"
    assert first.headers["Strict-Transport-Security"] == HSTS
    assert published.request("/fragment/overview").status == 401
    assert published.request("/stream").status == 401
    login = published.request("/login")
    assert login.status == 200 and "password" in login.body

    signed = published.sign_in()
    assert signed.status == 303, signed.body[:500]
    (cookie,) = signed.cookies()
    assert cookie.startswith(f"{SECURE_COOKIE}=")
    flags = {part.strip() for part in cookie.split(";")[1:]}
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= flags
    sid = cookie.split(";")[0]
    page = published.request("/", headers={"Cookie": sid})
    assert page.status == 200 and "<title>Fleet · meshop</title>" in page.body
    assert page.headers["Strict-Transport-Security"] == HSTS
    # the cookie under the plain name (what a plain-HTTP response would set) signs nobody in over TLS
    assert published.request("/", headers={"Cookie": "meshop_session=" + sid.split("=", 1)[1]}).status == 303


def test_a_dashboard_without_a_login_or_public_host_is_not_published(
    published: Published, consul_server: ConsulServer
) -> None:
    """The gateway asks before it proxies: an open loopback dashboard refuses the public host (421), a
    server that answers 200 without a login is NoLogin; the host answers a fixed 503 meanwhile, and the
    gateway's record says why. Pointing back at the dashboard with a login publishes it again."""
    prefix = published.store.prefix
    open_dashboard = serve_dashboard(consul_server, prefix)  # loopback, read-only, no login
    try:
        assert not open_dashboard.login_required
        published.point_at(f"127.0.0.1:{open_dashboard.port}")
        record = published.await_reason("HostRefused")
        assert not record.published and "--public-host" in record.message
        answer = published.request("/")  # the record is written once Caddy took the config
        assert answer.status == 503 and "not published (HostRefused)" in answer.body
        assert not answer.cookies()
    finally:
        open_dashboard.stop()
    with open_server() as port:
        published.point_at(f"127.0.0.1:{port}")
        published.await_reason("NoLogin")
        answer = published.request("/")
        assert answer.status == 503 and "not published (NoLogin)" in answer.body and '"open"' not in answer.body
    published.point_at(f"127.0.0.1:{published.dashboard.port}")
    published.await_reason("LoginRequired")
    assert published.request("/").status == 303


def test_the_dashboard_itself_refuses_proxied_requests_without_a_login(
    consul_server: ConsulServer, prefix: str
) -> None:
    """Belt and braces: even a proxy of someone's own that rewrites Host to loopback gets nothing from an
    open dashboard (every proxy adds ``X-Forwarded-For`` or ``Forwarded`` or ``Via``)."""
    import http.client

    dashboard = serve_dashboard(consul_server, prefix)
    try:
        for header in ("X-Forwarded-For", "Forwarded", "Via", "X-Forwarded-Proto"):
            conn = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=10)
            conn.request("GET", "/", headers={"Host": f"127.0.0.1:{dashboard.port}", header: "1.2.3.4"})
            response = conn.getresponse()
            assert response.status == 403, header
            assert "never served through a proxy" in response.read().decode()
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=10)
        conn.request("GET", "/", headers={"Host": f"127.0.0.1:{dashboard.port}"})
        assert conn.getresponse().status == 200  # direct, from this host: the CLI users' open page
        conn.close()
    finally:
        dashboard.stop()
