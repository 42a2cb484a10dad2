"""The dashboard published through the gateway (issue 27 item 4), for real: ``meshop gateway run`` with
its own Caddy and the internal CA, a Gateway document naming the dashboard host, a dashboard with
``--public-host`` and a password, a Consul with ACLs. The attacks are in
tests/security/test_dashboard_gateway.py."""

from __future__ import annotations

import io
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from meshop.cli.render import status_view
from meshop.client.cluster import read_snapshot
from meshop.client.status import build_report
from meshop.dashboard.auth import HSTS, SECURE_COOKIE
from tests.support.consul_server import ConsulServer
from tests.support.published_dashboard import PASSWORD, Published, open_server, published_dashboard, serve_dashboard


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
        # what `meshop status` (and the dashboard's own overview) says
        report = build_report(read_snapshot(published.store.config))
        (unpublished,) = report.dashboard_unpublished
        assert (unpublished.gateway, unpublished.host, unpublished.reason) == (
            published.gateway_id,
            published.host,
            "HostRefused",
        )
        assert report.to_dict()["dashboardUnpublished"][0]["reason"] == "HostRefused"
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(status_view(report))
        assert f"Dashboard {published.host} not published by gateway {published.gateway_id}" in console.export_text()
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
    assert build_report(read_snapshot(published.store.config)).dashboard_unpublished == ()


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


def trusting_home(tmp: Path, ca: str) -> Path:
    """A HOME whose NSS database (``.pki/nssdb``, what Chromium on Linux reads) trusts ``ca`` for TLS
    servers: the browser verifies the gateway's certificate, nothing is ignored."""
    nssdb = tmp / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil (Debian's libnss3-tools) is missing; run `make setup`")
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    add = [certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "meshop-gateway-ca", "-i", ca]
    subprocess.run(add, check=True, capture_output=True)
    return tmp


def open_login(driver: Any, url: str) -> list[str]:
    """Load ``url`` (it redirects to the login page); the Chromium network errors met on the way.

    A certificate error (``ERR_CERT_*``) ends it at once: the browser must trust the gateway's CA. Any
    other network error page is loaded again, three times at most: a TLS handshake that lands on a config
    load of the gateway's Caddy 2.6.2 fails with an internal-error alert (docs/routing.md, Known limits),
    and the previous test made the gateway load new configs."""
    errors: list[str] = []
    for _ in range(3):
        driver.get(url)
        source = driver.page_source
        error_page = driver.current_url.startswith("chrome-error") or "neterror" in source
        found = re.search(r"ERR_[A-Z0-9_]+", source) if error_page else None
        if found is None:
            return errors
        errors.append(found.group(0))
        if found.group(0).startswith("ERR_CERT"):
            return errors
    return errors


def test_chromium_signs_in_through_the_gateways_tls_and_sees_a_live_update(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Chromium trusts the gateway's internal CA (no certificate error ignored), resolves the dashboard
    host to the gateway, signs in with the password, and sees an event appear through the event stream
    of the page it opened once; the session cookie it holds is Secure."""
    from selenium.webdriver.common.by import By

    from meshop.consul.events import EventLog
    from tests.integration.dashboard.conftest import start_chromium
    from tests.integration.dashboard.test_dashboard_browser import await_page, rows

    home = trusting_home(tmp_path_factory.mktemp("home"), published.ca)
    resolve = f"--host-resolver-rules=MAP {published.host} 127.0.0.1"
    driver = start_chromium(tmp_path_factory, resolve, home=home)
    try:
        errors = open_login(driver, published.url)
        assert driver.current_url == published.url + "login", (errors, driver.page_source[:1000])
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login-password").click()
        await_page(driver, lambda d: d.title == "Fleet · meshop", 20, "the overview after signing in")
        await_page(driver, lambda d: d.find_element(By.ID, "conn").text == "live", 15, "the event stream to open")
        (cookie,) = driver.get_cookies()
        assert cookie["name"] == SECURE_COOKIE and cookie["secure"] and cookie["httpOnly"]
        message = f"through the gateway {secrets.token_hex(4)}"
        EventLog(published.admin, "test").append("GatewayTest", "service/web", message)
        await_page(driver, lambda d: "GatewayTest" in rows(d, "events", key="Kind"), 20, "the event, live")
        assert rows(driver, "events", key="Kind")["GatewayTest"]["Message"] == message
        assert int(driver.find_element(By.ID, "live").get_attribute("data-updates")) > 0  # not reloaded
        assert driver.current_url == published.url
    finally:
        driver.quit()
