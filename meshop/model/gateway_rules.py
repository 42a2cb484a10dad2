"""Gateway rules: served domains, the ACME e-mail (it lands in the Caddyfile), the DNS settings and the
dashboard's host (under a served domain, only with TLS) and upstream (an IP address and port)."""

from __future__ import annotations

import re
from typing import Any

from meshop.errors import Violation
from meshop.model import names
from meshop.model.rules import CONSUL_KEY, Out, as_dict, as_list, check

_SERVER_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):([0-9]{1,5})", re.ASCII)


_API_URL_RE = re.compile(
    r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]@?#]+)(?::([0-9]{1,5}))?(/[A-Za-z0-9._~/-]*)?", re.ASCII
)
_SERVER_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

DNS_SECRETS_FOLDER = "secrets/meshop-dns/"


def in_dns_folder(key: str) -> bool:
    """``<prefix>/secrets/meshop-dns/<name...>`` for some prefix (the writer checks the exact prefix)."""
    _, sep, rest = f"/{key}".partition(f"/{DNS_SECRETS_FOLDER}")
    return bool(sep) and bool(rest)


def split_server_address(value: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` that ``is_server_address`` accepts (IPv6 without brackets)."""
    m = _SERVER_RE.fullmatch(value) if is_server_address(value) else None
    return (m.group(1).strip("[]"), int(m.group(2))) if m else None


def is_server_address(value: object) -> bool:
    """``host:port`` with a hostname, an IPv4 address or a bracketed IPv6 address."""
    m = _SERVER_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None or not 1 <= int(m.group(2)) <= 65535:
        return False
    host = m.group(1)
    if host.startswith("["):
        import ipaddress  # here, not at the top: only a bracketed address needs it (start-up time)

        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    return names.is_hostname(host)


def is_api_url(value: object) -> bool:
    """``http(s)://host[:port][/path]``: a hostname, IPv4 or bracketed IPv6 host; no user, query, fragment."""
    m = _API_URL_RE.fullmatch(value) if isinstance(value, str) else None
    return m is not None and is_server_address(f"{m.group(2)}:{m.group(3) or '80'}")


def gateway_rules(out: Out, doc: dict[str, Any]) -> None:
    spec = as_dict(doc.get("spec"))
    domains = as_list(spec.get("domains"))
    seen: dict[str, int] = {}
    for i, domain in enumerate(domains):
        check(
            out,
            f"spec.domains[{i}]",
            domain,
            names.is_hostname(domain),
            "must be a lowercase DNS hostname: RFC 1123 labels joined by '.'",
        )
        if isinstance(domain, str):
            if domain in seen:
                out.append(Violation(f"spec.domains[{i}]", f"duplicate domain (also spec.domains[{seen[domain]}])"))
            seen.setdefault(domain, i)
    dashboard_rules(out, spec, [d for d in domains if names.is_hostname(d)])
    email = as_dict(spec.get("tls")).get("email")
    check(out, "spec.tls.email", email, names.is_email(email), "must be a plain address like ops@example.com")
    dns = as_dict(spec.get("dns"))
    check(
        out,
        "spec.dns.server",
        dns.get("server"),
        is_server_address(dns.get("server")),
        "must be host:port, e.g. 127.0.0.1:53 or ns1.example.com:53",
    )
    check(
        out,
        "spec.dns.apiUrl",
        dns.get("apiUrl"),
        is_api_url(dns.get("apiUrl")),
        "must be http(s)://host[:port][/path], e.g. https://ns1.example.com:8081 (no user, query or fragment)",
    )
    check(
        out,
        "spec.dns.serverId",
        dns.get("serverId"),
        isinstance(dns.get("serverId"), str) and _SERVER_ID_RE.fullmatch(dns["serverId"]) is not None,
        "must be the API's server id: letters, digits, '.', '_', '-' (at most 64), e.g. localhost",
    )
    for field in ("zone", "keyName"):
        check(
            out,
            f"spec.dns.{field}",
            dns.get(field),
            names.is_fqdn(dns.get(field)),
            "must be a DNS name like example.com. (lowercase, optional final dot)",
        )
    check(
        out,
        "spec.dns.ownerId",
        dns.get("ownerId"),
        names.is_dns_label(dns.get("ownerId")),
        "must be an RFC 1123 label (a-z, 0-9, '-'; at most 63): it is written into a TXT record",
    )
    secret_key = dns.get("keySecretKey")
    check(out, "spec.dns.keySecretKey", secret_key, names.is_consul_key(secret_key), CONSUL_KEY)
    if names.is_consul_key(secret_key) and not in_dns_folder(str(secret_key)):
        out.append(
            Violation(
                "spec.dns.keySecretKey",
                f"must lie in <prefix>/{DNS_SECRETS_FOLDER} (the one folder the DNS writer reads), "
                f"e.g. meshop/{DNS_SECRETS_FOLDER}tsig",
            )
        )


def is_ip_port(value: object) -> bool:
    """``IPv4:port`` or ``[IPv6]:port``: what the gateway's Caddy dials with no name to resolve."""
    split = split_server_address(value) if isinstance(value, str) else None
    if split is None:
        return False
    import ipaddress  # here, not at the top: only a document with a dashboard needs it (start-up time)

    try:
        ipaddress.ip_address(split[0])
    except ValueError:
        return False
    return "%" not in split[0]


def dashboard_rules(out: Out, spec: dict[str, Any], domains: list[str]) -> None:
    """``spec.dashboard``: its host is a hostname under one of the domains and is served only with TLS
    (a login crosses the internet there); its upstream is an IP address and port."""
    if "dashboard" not in spec:
        return
    dashboard = as_dict(spec.get("dashboard"))
    host = dashboard.get("host")
    check(out, "spec.dashboard.host", host, names.is_hostname(host), "must be a lowercase DNS hostname")
    if names.is_hostname(host) and domains and not any(names.host_in_domain(str(host), d) for d in domains):
        out.append(Violation("spec.dashboard.host", f"{host} is not under any of spec.domains ({', '.join(domains)})"))
    if as_dict(spec.get("tls")).get("mode") == "off":
        out.append(
            Violation(
                "spec.dashboard",
                "needs TLS: spec.tls.mode is off, and the dashboard's login would cross the network in clear "
                "(use acme or internal)",
            )
        )
    upstream = dashboard.get("upstream")
    check(
        out,
        "spec.dashboard.upstream",
        upstream,
        is_ip_port(upstream),
        "must be an IP address and port, e.g. 127.0.0.1:8080 or [fd7a:115c::5]:8080",
    )
