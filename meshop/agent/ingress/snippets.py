"""What the node's own Caddy should serve, as a pure function of the assignments and the plan.

For every assigned service with a ``route``, one snippet file (``meshop-svc-<service>.caddy``) with a
plain-HTTP site for the route's host and path on the node's ingress port, proxying to the service's
*local ready* replicas: the containers the plan serves (``NodePlan.serving``) that run and passed the
agent's own health probe, at the host port published for the route's container port. A service with
no ready local replica gets no file. ``meshop-ingress.caddy`` holds the catch-all site that keeps the
listener open and drops connections for hosts this node does not serve, so the gateway retries another
node instead of receiving an empty answer.

With ``https_port`` (``--ingress-https-port``) and a Gateway document whose TLS mode is not ``off``, the
same file also holds an HTTPS site for the route's host on that port (``tls internal`` or ACME, as the
gateway), so clients DNS sends straight to the node when no gateway is healthy get TLS from it. Only
hosts of routes served by a ready local replica get one: a name no local replica serves has no site and
no certificate on this node (``tls.NodeTLS``).

Values come from specs that passed the model's validation, and ``meshop.caddy.render`` checks them
again; a service whose values it refuses gets no file and an error (never a broken Caddyfile).

With the agent's upstream DNS (``resolver``), a snippet names its upstreams by a ``dynamic srv`` lookup
(``upstream_table`` is what the DNS answers) and lists, as static upstreams, the ones of the file Caddy
already serves (``pinned``, read back from it by ``static_upstreams``): a change of local replicas then
leaves the file as it is and needs no reload (the gateway does the same, ``gateway/config.py``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshop.agent.ingress.tls import NO_TLS, NodeTLS
from meshop.agent.planning.desired import host_port
from meshop.agent.planning.plan import Container, ReplicaKey
from meshop.caddy.dns_wire import site_name, target_name
from meshop.caddy.render import DynamicUpstreams, ProxyOptions, Site, UnsafeValue, render_fallback, render_site
from meshop.model import ServiceSpec

FALLBACK_FILE = "meshop-ingress.caddy"
SERVICE_PREFIX = "meshop-svc-"

# Whose X-Forwarded-* headers (the client's address, https) reach the containers instead of being replaced
# by the peer's own address: this host, and by default (GATEWAYS) the gateways — each address a gateway
# claimed in gateways/<id> (KV only the gateway role writes), followed as it changes. Before issue 24 it
# was all of the tailnet (100.64.0.0/10): any tailnet peer could set the client address a container saw.
LOCAL_PROXIES = ("127.0.0.0/8", "::1/128")
GATEWAYS = "gateways"  # in --ingress-trusted-proxy: the gateways' claimed addresses
TRUSTED_PROXIES = (*LOCAL_PROXIES, GATEWAYS)


def trusted_cidrs(configured: tuple[str, ...], gateways: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The CIDRs Caddy trusts: ``configured`` with ``GATEWAYS`` replaced by each gateway address (/32, /128)."""
    found: list[str] = []
    for item in configured:
        if item != GATEWAYS:
            found.append(item)
            continue
        for address in gateways:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                continue
            found.append(f"{ip}/{ip.max_prefixlen}")
    return tuple(dict.fromkeys(found))


# Local upstreams are health-checked by the agent and leave the snippet as soon as they stop: Caddy only
# retries a refused dial for a short while (a restarting container), then drops the connection.
NODE_PROXY = ProxyOptions(try_duration="1s", try_interval="100ms", fail_duration="0s", trusted_proxies=LOCAL_PROXIES)


def snippet_file(service: str) -> str:
    return f"{SERVICE_PREFIX}{service}.caddy"


def file_service(name: str) -> str | None:
    """The service a snippet file belongs to; None for the catch-all file (it concerns every route)."""
    if name.startswith(SERVICE_PREFIX) and name.endswith(".caddy"):
        return name[len(SERVICE_PREFIX) : -len(".caddy")]
    return None


@dataclass(frozen=True)
class IngressSettings:
    """The node Caddy's HTTP listener for routes, and where the agent reaches its containers."""

    port: int
    bind: tuple[str, ...] = ("127.0.0.1",)
    upstream_host: str = "127.0.0.1"  # the address container ports are published on (as the agent probes)
    host_network_host: str = "127.0.0.1"  # where host-network containers listen (the advertise address)
    proxy: ProxyOptions = NODE_PROXY
    https_port: int | None = None  # --ingress-https-port: HTTPS sites for the local routes (None: none)
    tls: NodeTLS = NO_TLS  # from the Gateway document; mode "off" renders no HTTPS site


@dataclass(frozen=True)
class LocalRoute:
    """One routed service on this node: its host and path, and the local containers that serve it."""

    service: str
    host: str
    path: str
    upstreams: tuple[tuple[str, str], ...] = ()  # (container id, "addr:port"), sorted by address

    @property
    def container_ids(self) -> frozenset[str]:
        return frozenset(cid for cid, _ in self.upstreams)


@dataclass(frozen=True)
class IngressFiles:
    files: dict[str, str] = field(default_factory=dict)  # file name -> text
    refused: dict[str, str] = field(default_factory=dict)  # service -> why its values were refused


def local_routes(
    specs: Mapping[str, ServiceSpec],
    serving: Mapping[ReplicaKey, str],
    containers: Mapping[str, Container],
    healthy: Mapping[str, bool],
    settings: IngressSettings,
) -> dict[str, LocalRoute]:
    """Every routed service, with the ready containers among those the plan serves."""
    found: dict[str, list[tuple[str, str]]] = {name: [] for name, spec in specs.items() if spec.route is not None}
    for (service, _replica), container_id in sorted(serving.items()):
        spec = specs.get(service)
        container = containers.get(container_id)
        if spec is None or spec.route is None or container is None or not container.running:
            continue
        if spec.health is not None and healthy.get(container_id) is not True:
            continue
        port = host_port(container, spec.route.port, "tcp", spec)
        if not port:
            continue
        address = settings.host_network_host if spec.network_mode == "host" else settings.upstream_host
        found[service].append((container_id, _join(address, port)))
    routes = {}
    for name, upstreams in found.items():
        route = specs[name].route
        assert route is not None
        routes[name] = LocalRoute(name, route.host, route.path, tuple(sorted(upstreams, key=lambda u: (u[1], u[0]))))
    return routes


def render_ingress(
    routes: Mapping[str, LocalRoute],
    settings: IngressSettings,
    *,
    resolver: str | None = None,
    pinned: Mapping[str, tuple[str, ...]] | None = None,
) -> IngressFiles:
    """The snippet files for ``routes``: the catch-all file, and one per service with a ready replica.

    With ``resolver`` a service whose upstreams are IP addresses gets ``dynamic srv`` upstreams and, as
    static ones, its ``pinned`` list (what Caddy serves now) when it has one."""
    files = {FALLBACK_FILE: render_fallback(settings.port, settings.bind, "rendered by meshop agent - catch-all")}
    refused: dict[str, str] = {}
    for name in sorted(routes):
        route = routes[name]
        if not route.upstreams:
            continue
        upstreams = tuple(address for _, address in route.upstreams)
        dynamic = None
        if resolver is not None and _dns_pairs(route) is not None:
            dynamic = DynamicUpstreams(site_name(route.host), resolver)
            upstreams = (pinned or {}).get(name) or upstreams
        site = Site(
            route.host,
            route.path,
            upstreams,
            comment=f"rendered by meshop agent for service {name} - edits are overwritten",
            dynamic=dynamic,
        )
        try:
            files[snippet_file(name)] = render_site(
                site,
                scheme="http",
                bind=settings.bind,
                tls=None,
                proxy=settings.proxy,
                port=settings.port,
                abort_on_error=True,
            )
            if settings.https_port is not None and settings.tls.serves(route.host):
                files[snippet_file(name)] += "\n" + render_site(
                    site,
                    scheme="https",
                    bind=settings.bind,
                    tls="internal" if settings.tls.mode == "internal" else None,
                    proxy=settings.proxy,
                    port=settings.https_port,
                )
        except UnsafeValue as exc:
            files.pop(snippet_file(name), None)
            refused[name] = str(exc)
    return IngressFiles(files, refused)


def upstream_table(routes: Mapping[str, LocalRoute]) -> dict[str, tuple[str, tuple[tuple[str, int], ...]]]:
    """service -> (SRV name, (address, port) of each upstream): what the upstream DNS answers for the
    services ``render_ingress`` renders dynamic."""
    table = {}
    for name, route in routes.items():
        pairs = _dns_pairs(route)
        if pairs:
            table[name] = (site_name(route.host), pairs)
    return table


_REVERSE_PROXY = re.compile(r"^\s*reverse_proxy ([^{\n]+) \{$", re.MULTILINE)


def static_upstreams(text: str) -> tuple[str, ...]:
    """The static upstreams of a snippet meshop rendered (its first ``reverse_proxy`` line), or ()."""
    found = _REVERSE_PROXY.search(text)
    return tuple(found.group(1).split()) if found else ()


def _dns_pairs(route: LocalRoute) -> tuple[tuple[str, int], ...] | None:
    """(address, port) of each upstream when every address is an IP (a DNS target can spell it)."""
    pairs = []
    for _, upstream in route.upstreams:
        host, _, port = upstream.rpartition(":")
        host = host.strip("[]")
        if target_name(host) is None:
            return None
        pairs.append((host, int(port)))
    return tuple(pairs) or None


def _join(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
