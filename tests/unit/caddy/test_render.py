"""The Caddyfile renderer: exact output for good input, refusal for anything that could inject."""

from __future__ import annotations

import pytest

from meshop.caddy.render import (
    ProxyOptions,
    Site,
    UnsafeValue,
    render_fallback,
    render_global,
    render_import,
    render_site,
)

PROXY = ProxyOptions()


def test_gateway_site_with_tls_internal_health_and_two_upstreams() -> None:
    site = Site(
        "whoami.example.com", "/", ("10.0.0.1:8080", "10.0.0.2:8080"), health_path="/healthz", comment="service whoami"
    )
    assert render_site(site, scheme="https", bind=("127.0.0.1",), tls="internal", proxy=PROXY) == (
        "# service whoami\n"
        "whoami.example.com {\n"
        "\tbind 127.0.0.1\n"
        "\ttls internal\n"
        "\thandle {\n"
        "\t\treverse_proxy 10.0.0.1:8080 10.0.0.2:8080 {\n"
        "\t\t\tlb_policy round_robin\n"
        "\t\t\tlb_try_duration 5s\n"
        "\t\t\tlb_try_interval 100ms\n"
        "\t\t\tfail_duration 10s\n"
        "\t\t\tmax_fails 1\n"
        "\t\t\tunhealthy_status 502 503 504\n"
        "\t\t\thealth_uri /healthz\n"
        "\t\t\thealth_interval 5s\n"
        "\t\t\thealth_timeout 2s\n"
        "\t\t\thealth_headers {\n"
        "\t\t\t\tHost whoami.example.com\n"
        "\t\t\t}\n"
        "\t\t}\n"
        "\t}\n"
        "}\n"
    )


def test_path_route_gets_its_own_handle_and_a_404_for_the_rest() -> None:
    text = render_site(
        Site("api.example.com", "/v1/", ("127.0.0.1:9000",)), scheme="http", bind=(), tls=None, proxy=PROXY
    )
    assert text.startswith("http://api.example.com {\n\thandle /v1* {\n\t\treverse_proxy 127.0.0.1:9000 {")
    assert '\thandle {\n\t\trespond "meshop: no route" 404\n\t}\n}\n' in text
    assert "health_uri" not in text


def test_no_upstream_answers_503_instead_of_an_empty_proxy() -> None:
    text = render_site(Site("down.example.com", "/", ()), scheme="http", bind=(), tls=None, proxy=PROXY)
    assert 'respond "meshop: no healthy upstream" 503' in text
    assert "reverse_proxy" not in text


@pytest.mark.parametrize(
    "site",
    [
        Site("evil.com {\n}\nimport /etc/x", "/", ("127.0.0.1:1",)),
        Site("a b.example.com", "/", ("127.0.0.1:1",)),
        Site("{$HOME}.example.com", "/", ("127.0.0.1:1",)),
        Site('x".example.com', "/", ("127.0.0.1:1",)),
        Site("UPPER.example.com", "/", ("127.0.0.1:1",)),
        Site("ok.example.com", "/a b", ("127.0.0.1:1",)),
        Site("ok.example.com", "/x}\nreverse_proxy evil", ("127.0.0.1:1",)),
        Site("ok.example.com", "/{path}", ("127.0.0.1:1",)),
        Site("ok.example.com", "no-slash", ("127.0.0.1:1",)),
        Site("ok.example.com", "/", ("127.0.0.1",)),
        Site("ok.example.com", "/", ("127.0.0.1:99999",)),
        Site("ok.example.com", "/", ("evil host:80",)),
        Site("ok.example.com", "/", ("127.0.0.1:80 {\n",)),
    ],
    ids=[
        "host-newline-import",
        "host-space",
        "host-env",
        "host-quote",
        "host-upper",
        "path-space",
        "path-brace-directive",
        "path-placeholder",
        "path-relative",
        "upstream-no-port",
        "upstream-port-range",
        "upstream-space",
        "upstream-brace",
    ],
)
def test_unsafe_values_never_reach_the_output(site: Site) -> None:
    with pytest.raises(UnsafeValue):
        render_site(site, scheme="https", bind=(), tls=None, proxy=PROXY)


@pytest.mark.parametrize("bind", [("0.0.0.0 {",), ("localhost",), ("",)], ids=["brace", "name", "empty"])
def test_bind_accepts_only_ip_addresses(bind: tuple[str, ...]) -> None:
    with pytest.raises(UnsafeValue):
        render_site(Site("ok.example.com", "/", ()), scheme="http", bind=bind, tls=None, proxy=PROXY)


def test_global_block_always_sets_admin_and_never_installs_trust() -> None:
    text = render_global(admin="unix//run/meshop/caddy.sock", http_port=8080, https_port=8443, email="ops@example.com")
    assert text == (
        "{\n\tadmin unix//run/meshop/caddy.sock\n\tskip_install_trust\n\thttp_port 8080\n\thttps_port 8443\n"
        "\temail ops@example.com\n}\n"
    )
    with pytest.raises(UnsafeValue):
        render_global(admin="0.0.0.0:2019 {\n}")
    with pytest.raises(UnsafeValue):
        render_global(admin="unix//x", email="a@b.com\n}")


def test_node_site_carries_its_port_and_drops_the_connection_when_no_upstream_answers() -> None:
    site = Site("web.example.com", "/", ("127.0.0.1:40000",))
    text = render_site(site, scheme="http", bind=("127.0.0.1",), tls=None, proxy=PROXY, port=8081, abort_on_error=True)
    assert text.startswith("http://web.example.com:8081 {\n\tbind 127.0.0.1\n")
    assert text.endswith("\thandle_errors {\n\t\tabort\n\t}\n}\n")
    gateway = render_site(site, scheme="http", bind=(), tls=None, proxy=PROXY)
    assert "handle_errors" not in gateway and gateway.startswith("http://web.example.com {")
    with pytest.raises(UnsafeValue):
        render_site(site, scheme="http", bind=(), tls=None, proxy=PROXY, port=70000)


def test_fallback_and_import_lines() -> None:
    assert render_fallback(8081, ("127.0.0.1",)) == "http://:8081 {\n\tbind 127.0.0.1\n\tabort\n}\n"
    assert render_fallback(80, (), "catch-all {evil}") == "# catch-all evil\nhttp://:80 {\n\tabort\n}\n"
    assert render_import("/var/lib/meshop/caddy/sites/") == "import /var/lib/meshop/caddy/sites/*.caddy\n"
    for bad in ("relative/sites", "/a b", "/x\nrespond 200", "/{$HOME}"):
        with pytest.raises(UnsafeValue):
            render_import(bad)
    with pytest.raises(UnsafeValue):
        render_fallback(0, ())


def test_trusted_proxies_are_networks_only() -> None:
    proxy = ProxyOptions(trusted_proxies=("127.0.0.0/8", "100.64.0.0/10", "::1"))
    text = render_site(Site("a.example.com", "/", ("127.0.0.1:1",)), scheme="http", bind=(), tls=None, proxy=proxy)
    assert "\t\t\ttrusted_proxies 127.0.0.0/8 100.64.0.0/10 ::1\n" in text
    for bad in ("private_ranges", "10.0.0.0/8 {", "0.0.0.0/33"):
        with pytest.raises(UnsafeValue):
            render_site(
                Site("a.example.com", "/", ("127.0.0.1:1",)),
                scheme="http",
                bind=(),
                tls=None,
                proxy=ProxyOptions(trusted_proxies=(bad,)),
            )


ZONE_INJECTION = "fe80::1%x\n}\nevil.example {\n\trespond pwned\n}\ny.example {\n\treverse_proxy 10.0.0.9:80"


@pytest.mark.parametrize(
    "upstream",
    [
        pytest.param(ZONE_INJECTION, id="zone-id-carrying-a-whole-site"),
        pytest.param("[fe80::1%eth0]:80", id="bracketed-zone-id"),
        pytest.param("2001:db8::1:80", id="unbracketed-ipv6"),
        pytest.param("[10.0.0.1]:80", id="bracketed-ipv4"),
        pytest.param("[node.example.com]:80", id="bracketed-hostname"),
        pytest.param("10.0.0.1:\uff18\uff10", id="non-ascii-digits"),
        pytest.param("10.0.0.1:0", id="port-zero"),
    ],
)
def test_upstreams_are_plain_addresses_and_ports(upstream: str) -> None:
    site = Site("ok.example.com", "/", (upstream,))
    with pytest.raises(UnsafeValue):
        render_site(site, scheme="https", bind=(), tls=None, proxy=PROXY)


@pytest.mark.parametrize(
    "upstream", ["10.0.0.1:80", "[2001:db8::1]:8080", "node-1.example.com:443"], ids=["ipv4", "ipv6", "hostname"]
)
def test_plain_upstreams_render(upstream: str) -> None:
    text = render_site(Site("ok.example.com", "/", (upstream,)), scheme="https", bind=(), tls=None, proxy=PROXY)
    assert f"reverse_proxy {upstream} {{" in text
