"""The gateway's Caddy config as a pure function of routes, the Gateway document and node liveness."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from meshop.caddy.dns_wire import site_name, target_name
from meshop.caddy.render import (
    DynamicUpstreams,
    ProxyOptions,
    Site,
    UnsafeValue,
    render_fallback,
    render_global,
    render_site,
)
from meshop.model.addresses import address_problem, is_ip_address, join_host_port, port_problem
from meshop.model.gateway import GatewayDashboard
from meshop.model.names import host_in_domain
from meshop.model.records import RouteRecord, Upstream


@dataclass(frozen=True)
class GatewaySettings:
    """Where and how the gateway's Caddy serves; ``tls_mode`` comes from the Gateway document."""

    admin: str
    http_port: int = 80
    https_port: int = 443
    bind: tuple[str, ...] = ("127.0.0.1",)
    tls_mode: str = "internal"  # acme | internal | off
    email: str | None = None
    domains: tuple[str, ...] = ()  # empty: serve every route host
    proxy: ProxyOptions = field(default_factory=ProxyOptions)
    local_cluster: bool = False  # upstreams on loopback/link-local addresses allowed (demo, tests)
    upstream_dns: str | None = None  # Caddy's address of the upstream DNS responder (None: static upstreams)
    dns_refresh: str = "1s"  # how long Caddy keeps a site's SRV answer
    dashboard: GatewayDashboard | None = None  # spec.dashboard: its host is never a service's route


@dataclass(frozen=True)
class GatewayPlan:
    sites: tuple[Site, ...]
    skipped: tuple[str, ...]  # hosts outside the Gateway's domains
    refused: tuple[str, ...] = ()  # upstreams left out, with why (an address no node may claim)
    fail_open: tuple[str, ...] = ()  # hosts whose every upstream's agent is down: all kept (panic)
    taken: tuple[str, ...] = ()  # route hosts left out: the dashboard's host (spec.dashboard.host)


def in_domains(host: str, domains: Iterable[str]) -> bool:
    domains = tuple(domains)
    return not domains or any(host_in_domain(host, d) for d in domains)


Resolved = Mapping[str, tuple[str, ...]]  # hostname -> the IP addresses the gateway resolved it to


def plan_sites(
    routes: Iterable[RouteRecord],
    down_nodes: set[str],
    domains: tuple[str, ...],
    *,
    local_cluster: bool = False,
    resolved: Resolved | None = None,
    reserved: frozenset[str] = frozenset(),
) -> GatewayPlan:
    """One site per route host with its healthy upstreams, leaving out nodes whose agent is down.

    Route records carry addresses that nodes reported about themselves: each upstream is checked again
    here (``address_problem``), so a bad one is left out (in ``refused``) and the site serves from the
    others. A hostname upstream is never handed to Caddy: it is replaced by the addresses the gateway
    resolved it to (``resolved``, looked up by the daemon), each checked the same way, so a name a
    compromised node points at the gateway's loopback is refused like the address itself.

    Fail open (Envoy's panic threshold): when that would leave a route with no upstream only because
    every upstream's agent is down — a hung or restarting agent, not a failed replica (the controller
    drops those from the record itself) — the route keeps all of them; its hosts are in ``fail_open``.

    A route for a ``reserved`` host (the dashboard's, from the Gateway document) is left out (``taken``):
    the operator's document wins over any service, so a service cannot serve a page at the host where
    people type their dashboard password.
    """
    resolved = resolved or {}
    sites: list[Site] = []
    skipped: list[str] = []
    refused: list[str] = []
    fail_open: list[str] = []
    taken: list[str] = []
    for route in sorted(routes, key=lambda r: r.host):
        if route.host in reserved:
            taken.append(route.host)
            continue
        if not in_domains(route.host, domains):
            skipped.append(route.host)
            continue
        acceptable: list[tuple[str, str]] = []  # (node, ip:port)
        for u in route.upstreams:
            problem = upstream_problem(u, local_cluster)
            addresses, problems = ((), [problem]) if problem else dial_addresses(u.address, resolved, local_cluster)
            refused.extend(f"{route.host}: node {u.node!r}: {p}" for p in problems)
            if u.healthy:
                acceptable.extend((u.node, join_host_port(a, u.port)) for a in addresses)
        healthy = {upstream for _, upstream in acceptable}
        alive = {upstream for node, upstream in acceptable if node not in down_nodes}
        if healthy and not alive:
            fail_open.append(route.host)
            alive = healthy
        upstreams = tuple(sorted(alive))
        health = route.health_path or None
        sites.append(Site(route.host, route.path, upstreams, health_path=health, comment=f"service {route.service}"))
    return GatewayPlan(tuple(sites), tuple(skipped), tuple(refused), tuple(fail_open), tuple(taken))


def dial_addresses(address: str, resolved: Resolved, local_cluster: bool) -> tuple[tuple[str, ...], list[str]]:
    """The IP addresses to dial for a checked upstream address, and why others were left out.

    An IP address is itself. A hostname is what it resolved to, each address checked again: one that
    resolves to the gateway's loopback (or link-local, …) is refused outside ``--local-cluster``."""
    if is_ip_address(address):
        return (address,), []
    answers = resolved.get(address, ())
    if not answers:
        return (), [f"{address!r} did not resolve to any address (left out until it does)"]
    accepted, problems = [], []
    for ip in sorted(set(answers)):
        problem = address_problem(ip, local_cluster=local_cluster) if is_ip_address(ip) else "not an IP address"
        if problem:
            problems.append(f"{address!r} resolves to {ip}: {problem}")
        else:
            accepted.append(ip)
    return tuple(accepted), problems


def hostnames(routes: Iterable[RouteRecord], *, local_cluster: bool = False) -> frozenset[str]:
    """The upstream hostnames the gateway must resolve (the ones that pass ``address_problem``)."""
    return frozenset(
        u.address
        for route in routes
        for u in route.upstreams
        if isinstance(u.address, str)
        and not is_ip_address(u.address)
        and address_problem(u.address, local_cluster=local_cluster) is None
    )


EMPTYING_HOLD = 5.0  # seconds an empty routes/ answer must persist before the gateway serves nothing


def emptying_wait(served_sites: int, planned_sites: int, emptied_since: float, now: float) -> float:
    """Seconds to keep the current config before loading a plan that serves nothing (0: load it).

    Never black-hole on uncertainty: a Consul server that restarts answers an empty ``routes/`` listing
    for a moment while it replays its log, and loading that would drop every host at once. A plan that
    takes the gateway from serving sites to serving none is loaded only after it has been the answer
    for ``EMPTYING_HOLD`` seconds; a deliberate removal of the last route is served that much longer.
    """
    if planned_sites or not served_sites:
        return 0.0
    return max(0.0, emptied_since + EMPTYING_HOLD - now)


Pinned = Mapping[str, tuple[str, ...]]  # host -> the static upstreams of the config Caddy serves


Probe = tuple[str, str, str, int]  # (route host, health path, address, port); ("", "", a, p): TCP connect


@dataclass(frozen=True)
class DynamicPlan:
    plan: GatewayPlan  # what to render: dynamic sites carry their pinned static upstreams
    table: dict[str, tuple[tuple[str, int], ...]]  # SRV name -> (address, port): what the DNS answers now
    probes: frozenset[Probe] = frozenset()  # the gateway's own active checks of DNS-served upstreams


def dynamic_sites(
    plan: GatewayPlan,
    pinned: Pinned,
    resolver: str | None,
    refresh: str = "1s",
    failing: frozenset[Probe] = frozenset(),
) -> DynamicPlan:
    """Serve upstream changes through DNS, so they need no Caddy reload (which costs requests on 2.6.2).

    A site whose upstreams are all IP addresses is rendered with ``dynamic srv`` (its SRV name in
    ``table``, answered by the gateway's responder) and, as static upstreams, the ones of the config
    Caddy already serves (``pinned``): Caddy uses those only while the responder does not answer (the
    gateway daemon stopped), so the rendered text, and with it the config, stays the same while only
    upstreams change. A site's static list is refreshed whenever the config is reloaded for another
    reason. Rendered like before (no DNS): sites without upstreams (they answer 503; an empty SRV
    answer would fall back to the static list) and every site when ``resolver`` is None (hostname
    upstreams never get here: ``plan_sites`` replaced them with their checked addresses).

    Caddy's health checks do not carry over to DNS-served upstreams, so the gateway checks them itself
    (``probes``: a TCP connect per address, and the ``health_path`` where the site has one); the ones
    ``failing`` are left out of the answer, unless that would leave none (then all stay: fail open).
    """
    if resolver is None:
        return DynamicPlan(plan, {})
    sites: list[Site] = []
    table: dict[str, tuple[tuple[str, int], ...]] = {}
    probes: set[Probe] = set()
    for site in plan.sites:
        pairs = [_split(u) for u in site.upstreams]
        if not pairs or any(target_name(address) is None for address, _ in pairs):
            sites.append(site)
            continue
        name = site_name(site.host)
        checks = {(a, p): [("", "", a, p)] for a, p in pairs}
        if site.health_path:
            for (a, p), found in checks.items():
                found.append((site.host, site.health_path, a, p))
        probes.update(c for found in checks.values() for c in found)
        passing = [pair for pair in pairs if not any(c in failing for c in checks[pair])]
        table[name] = tuple(passing or pairs)
        static = pinned.get(site.host) or site.upstreams
        sites.append(replace(site, upstreams=static, dynamic=DynamicUpstreams(name, resolver, refresh)))
    return DynamicPlan(replace(plan, sites=tuple(sites)), table, frozenset(probes))


def _split(upstream: str) -> tuple[str, int]:
    host, _, port = upstream.rpartition(":")
    return host.strip("[]"), int(port)


def upstream_problem(upstream: Upstream, local_cluster: bool) -> str | None:
    return address_problem(upstream.address, local_cluster=local_cluster) or port_problem(upstream.port)


def render_gateway(
    settings: GatewaySettings, plan: GatewayPlan, dashboard: Site | None = None
) -> tuple[str, list[str]]:
    """The whole gateway Caddyfile, and the hosts left out because a value in them is unsafe.

    ``dashboard`` (``meshop.gateway.dashboard.dashboard_site``) is served like a route, with TLS; it is
    never rendered without TLS (the Gateway document's rules refuse ``spec.dashboard`` with TLS off).

    Routes are written by the controller from validated documents, so an unsafe value means a
    hand-edited or corrupted record: that one site is left out, every other one is served.
    """
    scheme = "http" if settings.tls_mode == "off" else "https"
    head = render_global(
        admin=settings.admin,
        http_port=settings.http_port,
        https_port=settings.https_port,
        email=settings.email if settings.tls_mode == "acme" else None,
        local_certs=settings.tls_mode == "internal",
        auto_https="off" if settings.tls_mode == "off" else None,
    )
    parts = ["# Rendered by meshop gateway from Consul routes; edits are overwritten.\n", head]
    tls = "internal" if settings.tls_mode == "internal" else None
    refused: list[str] = []
    extra = (dashboard,) if dashboard is not None and scheme == "https" else ()
    for site in (*plan.sites, *extra):
        try:
            parts.append(render_site(site, scheme=scheme, bind=settings.bind, tls=tls, proxy=settings.proxy))
        except UnsafeValue as exc:
            refused.append(f"{site.host!r}: {exc}")
    parts.append(render_fallback(settings.http_port, settings.bind, "any other host: 404", not_found=True))
    return "\n".join(parts), refused
