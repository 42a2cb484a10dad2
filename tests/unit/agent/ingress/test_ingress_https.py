"""HTTPS on the node Caddy (``--ingress-https-port``): which local routes get an HTTPS site and with which
TLS, the TLS read from the Gateway document (hostile input), the flag, and the main Caddyfile (tables;
the real Caddy serves them in tests/integration/routing/test_node_https.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions, NodeCaddy
from meshop.agent.ingress.snippets import IngressSettings, LocalRoute, render_ingress
from meshop.agent.ingress.tls import NO_TLS, NodeTLS, tls_from_document
from meshop.agent.reconciler import AgentSettings
from meshop.config.agent import AgentConfig
from meshop.consul.kv import Entry, Listing
from meshop.errors import ConfigError, DocumentError

SETTINGS = IngressSettings(port=8081, bind=("100.64.0.7",), https_port=8443)
UP = (("a", "127.0.0.1:40000"),)
WEB = LocalRoute("web", "web.example.com", "/", UP)
API = LocalRoute("api", "api.other.org", "/", UP)
IDLE = LocalRoute("idle", "idle.example.com", "/")  # routed, but no ready replica on this node
INTERNAL = NodeTLS("internal")


def https_sites(files: dict[str, str]) -> dict[str, list[str]]:
    """file -> the HTTPS site addresses in it (plain http:// sites left out)."""
    found: dict[str, list[str]] = {}
    for name, text in files.items():
        found[name] = [line[:-2] for line in text.splitlines() if line.endswith(" {") and ":8443" in line]
    return {name: sites for name, sites in found.items() if sites}


CASES = [
    # (id, https_port, tls, routes, expected file -> HTTPS sites)
    ("flag off: no HTTPS (the default)", None, INTERNAL, [WEB], {}),
    ("no Gateway document: no HTTPS", 8443, NO_TLS, [WEB], {}),
    ("tls off in the document: no HTTPS", 8443, NodeTLS("off"), [WEB], {}),
    (
        "internal: every local route",
        8443,
        INTERNAL,
        [WEB, API],
        {"meshop-svc-web.caddy": ["web.example.com:8443"], "meshop-svc-api.caddy": ["api.other.org:8443"]},
    ),
    ("acme", 8443, NodeTLS("acme"), [WEB], {"meshop-svc-web.caddy": ["web.example.com:8443"]}),
    (
        "domains narrow the hosts, as on the gateway",
        8443,
        NodeTLS("internal", ("example.com",)),
        [WEB, API],
        {"meshop-svc-web.caddy": ["web.example.com:8443"]},
    ),
    ("a route without a local ready replica: no site, no certificate", 8443, INTERNAL, [IDLE], {}),
]


@pytest.mark.parametrize(("https_port", "tls", "routes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_https_sites_for_local_routes_only(https_port, tls, routes, expected) -> None:
    settings = replace(SETTINGS, https_port=https_port, tls=tls)
    rendered = render_ingress({r.service: r for r in routes}, settings)
    assert rendered.refused == {}
    assert https_sites(rendered.files) == expected


def test_the_https_site_follows_the_http_one_with_the_tls_mode() -> None:
    internal = render_ingress({"web": WEB}, replace(SETTINGS, tls=INTERNAL)).files["meshop-svc-web.caddy"]
    http_only = render_ingress({"web": WEB}, SETTINGS).files["meshop-svc-web.caddy"]
    assert internal.startswith(http_only)  # the plain-HTTP site the gateway uses is unchanged
    https = internal[len(http_only) :]
    assert https.startswith("\n# rendered by meshop agent for service web - edits are overwritten\n")
    assert "web.example.com:8443 {\n\tbind 100.64.0.7\n\ttls internal\n\thandle {\n" in https
    assert "reverse_proxy 127.0.0.1:40000 {" in https
    assert "handle_errors" not in https  # a client straight on the node gets Caddy's 502, not a cut connection
    acme = render_ingress({"web": WEB}, replace(SETTINGS, tls=NodeTLS("acme"))).files["meshop-svc-web.caddy"]
    assert "tls internal" not in acme and "web.example.com:8443 {" in acme


def test_an_unsafe_host_gets_no_file_at_all() -> None:
    evil = LocalRoute("evil", "evil.example.com {\n}\nimport /etc", "/", UP)
    rendered = render_ingress({"evil": evil, "web": WEB}, replace(SETTINGS, tls=INTERNAL))
    assert "not a hostname" in rendered.refused["evil"]
    assert "meshop-svc-evil.caddy" not in rendered.files and "import" not in "".join(rendered.files.values())


GATEWAY = """apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {name: gateway}
spec:
  domains: [example.com]
  tls: {mode: internal}
"""

DOCUMENTS = [
    ("internal", GATEWAY, NodeTLS("internal", ("example.com",))),
    (
        "acme",
        GATEWAY.replace("{mode: internal}", "{mode: acme, email: ops@example.com}"),
        NodeTLS("acme", ("example.com",)),
    ),
    ("off", GATEWAY.replace("internal", "off"), NodeTLS("off", ("example.com",))),
    ("absent", None, NO_TLS),
]


@pytest.mark.parametrize(("text", "expected"), [d[1:] for d in DOCUMENTS], ids=[d[0] for d in DOCUMENTS])
def test_tls_from_the_gateway_document(text: str | None, expected: NodeTLS) -> None:
    assert tls_from_document(text.encode() if text is not None else None) == expected


BAD = [
    ("unknown mode", GATEWAY.replace("internal", "plaintext"), "mode"),
    ("domain with a brace", GATEWAY.replace("[example.com]", '["example.com {"]'), "domains"),
    ("two documents", GATEWAY + "---\n" + GATEWAY, "expected one Gateway document"),
    ("not YAML", "spec: [", "desired/gateway"),
]


@pytest.mark.parametrize(("text", "why"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_gateway_document_is_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(DocumentError, match=why):
        tls_from_document(text.encode())


def listing(text: str | None, key: str = "desired/gateway") -> Listing:
    return Listing(1, () if text is None else (Entry(key, text.encode(), 1),))


def test_the_node_caddy_follows_the_document_and_keeps_its_tls_on_a_bad_one(tmp_path: Path) -> None:
    caddy = NodeCaddy(CaddyOptions(ingress_port=8081, https_port=8443, directory=tmp_path), "127.0.0.1", "127.0.0.1")
    assert "auto_https disable_redirects" in caddy._main_text  # certificate automation for the HTTPS sites
    assert caddy.ingress.settings.https_port == 8443 and caddy.ingress.settings.tls == NO_TLS
    assert caddy.follow_gateway(listing(GATEWAY)) is True
    assert caddy.ingress.settings.tls == NodeTLS("internal", ("example.com",))
    assert caddy.follow_gateway(listing(GATEWAY)) is False  # unchanged: no wake-up
    assert caddy.follow_gateway(listing("spec: [")) is False  # a typo keeps HTTPS as it was
    assert caddy.ingress.settings.tls == NodeTLS("internal", ("example.com",))
    assert caddy.follow_gateway(listing(GATEWAY, key="desired/gateway-other")) is True  # only the exact key
    assert caddy.ingress.settings.tls == NO_TLS
    plain = NodeCaddy(CaddyOptions(ingress_port=8081, directory=tmp_path), "127.0.0.1", "127.0.0.1")
    assert "auto_https off" in plain._main_text  # without the flag the node Caddy is as before


def options(**kw: object) -> CaddyOptions | None:
    """What ``meshop agent run`` builds from these node Caddy flags (``AgentConfig``, keys of the config file)."""
    given = {"node": "n1", "advertise_addr": "127.0.0.1", **kw}
    return AgentConfig.load(given).caddy(AgentSettings(node="n1", advertise_addr="127.0.0.1"))


def test_the_https_port_flag(tmp_path: Path) -> None:
    assert options(caddy_dir=tmp_path, ingress_port=8081).https_port is None  # off by default
    assert options(caddy_dir=tmp_path, ingress_port=8081, ingress_https_port=8443).https_port == 8443
    with pytest.raises(ConfigError, match="--caddy-dir"):
        options(ingress_https_port=8443)
    with pytest.raises(ConfigError, match="differ"):
        options(caddy_dir=tmp_path, ingress_port=8443, ingress_https_port=8443)
