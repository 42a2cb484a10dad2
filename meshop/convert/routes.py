"""Pure: the route a Compose service's reverse-proxy labels ask for (Traefik v1/v2, caddy-docker-proxy).

meshop's gateway is the reverse proxy, so the host, path prefix and port those labels name become the
Service's ``route``; the rest of the proxy's labels (middlewares, TLS resolvers, entry points) mean
nothing to meshop and are reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from meshop.model.digits import parse_uint


class RouteLabels(NamedTuple):
    hosts: tuple[str, ...]  # as written (lowercased), first one used
    path: str  # "/" when none
    port: int | None  # the label's backend port, None when the labels name none
    source: str  # "traefik" | "caddy"
    ignored: tuple[str, ...]  # proxy labels with no meaning for meshop


_TRAEFIK_HOST = re.compile(r"Host(?:SNI)?\(([^)]*)\)")
_TRAEFIK_PATH = re.compile(r"PathPrefix\(\s*[`'\"]([^`'\"]+)[`'\"]")
_QUOTED = re.compile(r"[`'\"]([^`'\"]+)[`'\"]")


def _traefik(labels: Mapping[str, str]) -> RouteLabels | None:
    if labels.get("traefik.enable", "true").lower() == "false":
        return None
    hosts: list[str] = []
    path, port, ignored = "/", None, []
    for key, value in sorted(labels.items()):
        if not key.startswith("traefik."):
            continue
        if re.fullmatch(r"traefik\.http\.routers\.[^.]+\.rule", key):
            for group in _TRAEFIK_HOST.findall(value):
                hosts.extend(_QUOTED.findall(group))
            prefix = _TRAEFIK_PATH.search(value)
            path = prefix[1] if prefix else path
        elif key == "traefik.frontend.rule":  # Traefik v1: Host:a.example.com,b.example.com;PathPrefix:/x
            for part in value.split(";"):
                name, _, args = part.partition(":")
                if name.strip() == "Host":
                    hosts.extend(h.strip() for h in args.split(",") if h.strip())
                elif name.strip() in ("PathPrefix", "PathPrefixStrip"):
                    path = args.split(",")[0].strip() or path
        elif re.fullmatch(r"traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port|traefik\.port", key):
            found = parse_uint(value.strip(), limit=10**18)  # strip() also takes "\x1f", which int() refuses
            port = port if found is None else found
        elif key != "traefik.enable":
            ignored.append(key)
    if not hosts:
        return None
    return RouteLabels(tuple(h.lower() for h in hosts), path, port, "traefik", tuple(ignored))


def _caddy(labels: Mapping[str, str]) -> RouteLabels | None:
    site = labels.get("caddy")
    if not site:
        return None
    hosts = [re.sub(r"^https?://", "", word).split(":")[0].split("/")[0] for word in re.split(r"[\s,]+", site)]
    port = None
    upstreams = re.search(r"\{\{\s*upstreams\s+(?:https?\s+)?(\d+)\s*\}\}", labels.get("caddy.reverse_proxy", ""))
    if upstreams:
        port = int(upstreams[1])
    ignored = tuple(k for k in sorted(labels) if k.startswith("caddy.") and k != "caddy.reverse_proxy")
    return RouteLabels(tuple(h.lower() for h in hosts if h), "/", port, "caddy", ignored)


def route_labels(labels: Mapping[str, str]) -> RouteLabels | None:
    """What the service's Traefik or caddy-docker-proxy labels route to it; None without such labels."""
    return _traefik(labels) or _caddy(labels)


def is_proxy_label(key: str) -> bool:
    return key.startswith("traefik.") or key == "caddy" or key.startswith("caddy.")
