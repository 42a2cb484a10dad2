"""Caddyfile text from validated fields only: pure functions, no I/O.

Nothing a user typed reaches the output verbatim unless it passed the model's hostname/path rules; the
renderer checks again (``_safe_*``) and refuses anything else, so a bug upstream cannot turn into a
Caddyfile injection. Upstreams are ``address:port`` pairs built from node records and host ports.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from meshop.model.digits import parse_port
from meshop.model.names import is_hostname, is_url_path, is_wildcard_hostname

_DURATION = re.compile(r"^[0-9]+(ms|s|m)$")


@dataclass(frozen=True)
class ProxyOptions:
    """How a reverse_proxy behaves; the defaults favour zero failed requests during changes."""

    lb_policy: str = "round_robin"
    try_duration: str = "5s"  # keep retrying the dial (another upstream, or a restarting one) this long
    try_interval: str = "100ms"
    fail_duration: str = "10s"  # passive health: a failed upstream sits out this long
    health_interval: str = "5s"
    health_timeout: str = "2s"
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-* headers are kept, not replaced


@dataclass(frozen=True)
class DynamicUpstreams:
    """Caddy 2.6's ``dynamic srv``: the upstreams come from an SRV lookup of ``name`` at request time
    (cached ``refresh`` long), targets resolved by the same ``resolver`` (``unixpacket//PATH``, a unix
    SEQPACKET socket in a private folder, or ``IP:PORT``, UDP: ``upstream_dns``); the site's
    static ``upstreams`` serve only while that lookup fails."""

    name: str
    resolver: str
    refresh: str = "1s"


@dataclass(frozen=True)
class Site:
    """One routed host: requests for ``host`` + ``path`` go to ``upstreams`` (``addr:port``)."""

    host: str
    path: str
    upstreams: tuple[str, ...]
    health_path: str | None = None  # active health checks (with the site's Host header) when set
    comment: str = ""
    dynamic: DynamicUpstreams | None = None
    unavailable: str = "meshop: no healthy upstream"  # the 503 answer while there are no upstreams
    # False: a new upstream connection per request. A POST on a pooled connection that the upstream is
    # closing fails as a 502 (Caddy replays only idempotent requests); for a low-traffic loopback upstream
    # such as the dashboard, a connect per request costs nothing.
    keepalive: bool = True


def render_site(
    site: Site,
    *,
    scheme: str,
    bind: Sequence[str],
    tls: str | None,
    proxy: ProxyOptions,
    port: int | None = None,
    abort_on_error: bool = False,
) -> str:
    """One site block. ``scheme`` "http" serves plain HTTP on the http_port; "https" lets Caddy do TLS.

    ``port`` puts the listener in the site address itself (a node's snippets then need nothing from the
    global options). ``abort_on_error`` closes the connection instead of answering 502 when no upstream
    could be reached, so a proxy in front (the gateway) retries another node for idempotent requests.
    """
    host = _safe_host(site.host)
    path = _safe_path(site.path)
    address = f"http://{host}" if scheme == "http" else host
    if port is not None:
        address = f"{address}:{_port(port)}"
    lines = []
    if site.comment:
        lines.append(f"# {_safe_comment(site.comment)}")
    lines.append(f"{address} {{")
    if bind:
        lines.append(f"\tbind {' '.join(_safe_bind(b) for b in bind)}")
    if tls == "internal":
        lines.append("\ttls internal")
    matcher = "" if path == "/" else f" {path.rstrip('/')}*"
    lines.append(f"\thandle{matcher} {{")
    if site.upstreams:
        lines.extend("\t\t" + line for line in _reverse_proxy(site, proxy))
    else:
        lines.append(f'\t\trespond "{_safe_text(site.unavailable)}" 503')
    lines.append("\t}")
    if matcher:
        lines.append("\thandle {")
        lines.append('\t\trespond "meshop: no route" 404')
        lines.append("\t}")
    if abort_on_error:
        lines.extend(["\thandle_errors {", "\t\tabort", "\t}"])
    lines.append("}")
    return "\n".join(lines) + "\n"


NO_SITE = "no site for this host here"  # the gateway's answer (404) to a host it serves nothing for


def render_fallback(port: int, bind: Sequence[str], comment: str = "", *, not_found: bool = False) -> str:
    """A catch-all plain-HTTP site on ``port`` for every host without a site: the connection closed, or
    with ``not_found`` a 404 saying so (the gateway's: a person's browser may be the one asking).

    Either way the listener stays while nothing is routed, and nobody gets Caddy's default empty ``200``
    (which reads as success). A gateway that reaches a node which no longer (or not yet) serves a host sees
    a dropped connection, which it retries on another node. Caddy's redirects of known hosts to HTTPS still
    come first (checked with 2.6.2).
    """
    lines = [f"# {_safe_comment(comment)}"] if comment else []
    lines.append(f"http://:{_port(port)} {{")
    if bind:
        lines.append(f"\tbind {' '.join(_safe_bind(b) for b in bind)}")
    lines.extend([f'\trespond "{NO_SITE}" 404' if not_found else "\tabort", "}"])
    return "\n".join(lines) + "\n"


def _reverse_proxy(site: Site, proxy: ProxyOptions) -> list[str]:
    upstreams = " ".join(_safe_upstream(u) for u in site.upstreams)
    lines = [f"reverse_proxy {upstreams} {{"]
    lines.append(f"\tlb_policy {_choice(proxy.lb_policy, {'round_robin', 'least_conn', 'random', 'first'})}")
    lines.append(f"\tlb_try_duration {_safe_duration(proxy.try_duration)}")
    lines.append(f"\tlb_try_interval {_safe_duration(proxy.try_interval)}")
    lines.append(f"\tfail_duration {_safe_duration(proxy.fail_duration)}")
    lines.append("\tmax_fails 1")
    lines.append("\tunhealthy_status 502 503 504")
    if proxy.trusted_proxies:
        lines.append(f"\ttrusted_proxies {' '.join(_safe_cidr(c) for c in proxy.trusted_proxies)}")
    if site.dynamic is not None:
        resolver = _safe_resolver(site.dynamic.resolver)
        lines.append(f"\tdynamic srv {_safe_host(site.dynamic.name)} {{")
        lines.append(f"\t\trefresh {_safe_duration(site.dynamic.refresh)}")
        lines.append(f"\t\tresolvers {resolver}")
        lines.append("\t\tdial_timeout 1s")
        lines.append("\t}")
        lines.append("\ttransport http {")
        lines.append(f"\t\tresolvers {resolver}")
        if not site.keepalive:
            lines.append("\t\tkeepalive off")
        lines.append("\t}")
    elif not site.keepalive:
        lines.extend(["\ttransport http {", "\t\tkeepalive off", "\t}"])
    if site.health_path:
        lines.append(f"\thealth_uri {_safe_path(site.health_path)}")
        lines.append(f"\thealth_interval {_safe_duration(proxy.health_interval)}")
        lines.append(f"\thealth_timeout {_safe_duration(proxy.health_timeout)}")
        lines.append("\thealth_headers {")
        lines.append(f"\t\tHost {_safe_host(site.host)}")
        lines.append("\t}")
    lines.append("}")
    return lines


def render_global(
    *,
    admin: str,
    http_port: int | None = None,
    https_port: int | None = None,
    storage: str | None = None,
    email: str | None = None,
    auto_https: str | None = None,
    local_certs: bool = False,
) -> str:
    """The global options block; the admin endpoint is always explicit (else Caddy opens :2019)."""
    lines = ["{", f"\tadmin {_safe_admin(admin)}", "\tskip_install_trust"]
    if http_port is not None:
        lines.append(f"\thttp_port {_port(http_port)}")
    if https_port is not None:
        lines.append(f"\thttps_port {_port(https_port)}")
    if storage:
        lines.append(f"\tstorage file_system {_safe_fs_path(storage)}")
    if email:
        lines.append(f"\temail {_safe_email(email)}")
    if local_certs:
        lines.append("\tlocal_certs")
    if auto_https:
        lines.append(f"\tauto_https {_choice(auto_https, {'off', 'disable_redirects'})}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_import(folder: str) -> str:
    """``import <folder>/*.caddy``: how a node's Caddyfile pulls in the snippet files the agent writes."""
    return f"import {_safe_fs_path(folder.rstrip('/'))}/*.caddy\n"


class UnsafeValue(ValueError):
    """A value that must never reach a Caddyfile (validation should have stopped it earlier)."""


def _safe_host(host: str) -> str:
    if not (is_hostname(host) or is_wildcard_hostname(host)):
        raise UnsafeValue(f"not a hostname: {host!r}")
    return host


def _safe_path(path: str) -> str:
    if not is_url_path(path):
        raise UnsafeValue(f"not a safe URL path: {path!r}")
    return path


def _safe_upstream(upstream: str) -> str:
    """``host:port``, ``[ipv6]:port`` or ``ipv4:port`` and nothing else: no zone id (``ipaddress`` accepts
    ``fe80::1%<anything>``, newlines and braces included), no unbracketed IPv6, no whitespace."""
    host, sep, port = upstream.rpartition(":")
    number = parse_port(port, zero=True)  # 0 is refused by _port, naming it
    if not sep or number is None:
        raise UnsafeValue(f"upstream without a port: {upstream!r}")
    _port(number)
    if host.startswith("[") and host.endswith("]"):
        if not _is_plain_ip(host[1:-1], version=6):
            raise UnsafeValue(f"not an IPv6 address in brackets: {upstream!r}")
    elif not (_is_plain_ip(host, version=4) or is_hostname(host)):
        raise UnsafeValue(f"not an upstream address (IPv4, [IPv6] or hostname): {upstream!r}")
    return upstream


_SOCKET_PATH = re.compile(r"/[A-Za-z0-9_./-]{1,106}", re.ASCII)


def _safe_resolver(address: str) -> str:
    """Caddy's network address of a DNS responder: ``unixpacket//abs/path`` as given (plain path
    characters, no ``..``), or ``udp/`` + ``IPv4:port`` / ``[IPv6]:port``."""
    if address.startswith("unixpacket/"):
        path = address[len("unixpacket/") :]
        if not _SOCKET_PATH.fullmatch(path) or ".." in path.split("/"):
            raise UnsafeValue(f"not a unix socket path: {address!r}")
        return address
    host, sep, port = address.rpartition(":")
    number = parse_port(port, zero=True)  # 0 is refused by _port, naming it
    if not sep or number is None:
        raise UnsafeValue(f"resolver without a port: {address!r}")
    _port(number)
    plain = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not _is_plain_ip(plain, version=6 if plain is not host else 4):
        raise UnsafeValue(f"not an IP address and port: {address!r}")
    return f"udp/{address}"


def _is_plain_ip(text: str, version: int) -> bool:
    if "%" in text or not text.isascii():
        return False
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _safe_cidr(network: str) -> str:
    try:
        ipaddress.ip_network(network, strict=False)
    except ValueError:
        raise UnsafeValue(f"not an IP network: {network!r}") from None
    return network


def _safe_bind(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UnsafeValue(f"not an IP address to bind: {address!r}") from None
    return address


def _safe_admin(address: str) -> str:
    if not re.fullmatch(r"unix//[A-Za-z0-9._/-]+|[A-Za-z0-9.:\[\]-]+:[0-9]+", address):
        raise UnsafeValue(f"not an admin address: {address!r}")
    return address


def _safe_fs_path(path: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9._/-]+", path):
        raise UnsafeValue(f"not a safe file system path: {path!r}")
    return path


def _safe_email(email: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+", email):
        raise UnsafeValue(f"not an email address: {email!r}")
    return email


def _safe_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise UnsafeValue(f"not a duration: {value!r}")
    return value


_TEXT = re.compile(r"[A-Za-z0-9 .,:;()/=-]{1,300}", re.ASCII)


def _safe_text(text: str) -> str:
    """A fixed answer body between double quotes: plain words only (no quote, brace, newline)."""
    if not _TEXT.fullmatch(text):
        raise UnsafeValue(f"not plain text for a response body: {text!r}")
    return text


def _safe_comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._:/=-]", "", text)[:200]


def _choice(value: str, allowed: set[str]) -> str:
    if value not in allowed:
        raise UnsafeValue(f"{value!r} is not one of {sorted(allowed)}")
    return value


def _port(port: int) -> int:
    if not 0 < port < 65536:
        raise UnsafeValue(f"not a port: {port!r}")
    return port
