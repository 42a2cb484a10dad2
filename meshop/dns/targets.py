"""Which addresses each DNS name should hold: the healthy gateways, else the nodes serving each host.

The rule:

* gateways: while at least one gateway is healthy, every managed name points at every healthy
  gateway (each serves every route). A name is a served host (``records: hosts``) or ``*.<domain>``
  for each Gateway domain (``records: wildcard``); names outside the zone are skipped.
* direct (degraded): with no healthy gateway, each host points at the nodes whose replicas serve it
  (the route's healthy upstreams), so traffic reaches a node's own Caddy; a wildcard points at every
  node serving some host under its domain. When a gateway is healthy again, records move back.

A gateway counts only when it holds a claim (``gateways/<id>``, KV only the gateway role may write) for
the very address its ``meshop-gateway-<id>`` registration advertises (``claimed_address``): the service
name alone is a weaker proof (Consul scopes service rights by name only, and a stale or misconfigured
agent policy once granted ``meshop-gateway``), so a registration no gateway token vouched for is
ignored, whatever Consul says (issue 24). A claim that says ``held`` counts only while a Consul session
holds it (``meshop/gateway/presence.py``): the gateway takes it once it serves, and its machine's death
releases it, so a rebooted gateway host is not named before its Caddy listens.

Only IP literals become records (A for IPv4, AAAA for IPv6); anything else is skipped with a reason.
The caller has already refused addresses no node or gateway may claim (``address_problem``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshop.model.names import host_in_domain, is_dns_label

GATEWAYS = "gateways"
DIRECT = "direct"


@dataclass(frozen=True)
class GatewayInstance:
    """One registered gateway as the writer sees it: its id, advertised address and health."""

    gateway_id: str
    address: str
    healthy: bool


@dataclass(frozen=True)
class Targets:
    records: Mapping[str, tuple[str, ...]]  # name -> addresses (may be empty: nothing to point at)
    mode: str  # gateways | direct
    gateways: tuple[str, ...] = ()  # ids of the gateways the records point at
    skipped: tuple[str, ...] = ()  # why a host or an address was left out


@dataclass(frozen=True)
class Claim:
    """What ``gateways/<id>`` says: the address the registration may hold, and whether the claim is live
    (a plain claim of an older gateway always is; a ``held`` one only while a session holds it)."""

    address: str
    live: bool = True


def gateway_claims(entries: Iterable[tuple[str, bytes | str, str | None]], prefix: str) -> dict[str, Claim]:
    """Gateway id -> its claim, from ``(key, value, session)`` triples under ``prefix`` (``gateways/``);
    keys that are not one label deep and values that are not ``{"address": str}`` objects are skipped."""
    claims: dict[str, Claim] = {}
    for key, value, session in entries:
        gid = key.removeprefix(prefix)
        if gid == key or not is_dns_label(gid):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        address = record.get("address") if isinstance(record, dict) else None
        if isinstance(address, str) and address:
            claims[gid] = Claim(address, live=record.get("held") is not True or bool(session))
    return claims


def claim_value(address: str, *, held: bool = False) -> str:
    """The claim a gateway writes for itself: the address its registration advertises; ``held``: it holds
    the claim with its machine's session, so the claim counts only while held."""
    return json.dumps({"address": address, "held": True} if held else {"address": address})


def ip_literal(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def in_zone(name: str, zone: str) -> bool:
    return host_in_domain(name, zone.rstrip("."))


def desired_records(
    hosts: Mapping[str, Iterable[str]],
    gateways: Iterable[GatewayInstance],
    *,
    zone: str,
    wildcard: bool = False,
    domains: Iterable[str] = (),
) -> Targets:
    """``hosts``: every served host -> the addresses of the nodes serving it (healthy upstreams)."""
    skipped: list[str] = []
    live: dict[str, str] = {}
    for gw in sorted(gateways, key=lambda g: g.gateway_id):
        if not gw.healthy:
            continue
        ip = ip_literal(gw.address)
        if ip is None:
            skipped.append(f"gateway {gw.gateway_id}: address {gw.address!r} is not an IP address")
            continue
        live[gw.gateway_id] = ip
    direct: dict[str, set[str]] = {}
    for host in sorted(hosts):
        if not in_zone(host, zone):
            skipped.append(f"{host}: outside zone {zone.rstrip('.')}")
            continue
        ips = set()
        for address in hosts[host]:
            ip = ip_literal(address)
            if ip is None:
                skipped.append(f"{host}: node address {address!r} is not an IP address")
            else:
                ips.add(ip)
        direct[host] = ips
    if wildcard:
        grouped: dict[str, set[str]] = {}
        for domain in sorted(set(domains)):
            if not in_zone(domain, zone):
                skipped.append(f"*.{domain}: outside zone {zone.rstrip('.')}")
                continue
            grouped[f"*.{domain}"] = set().union(*(ips for h, ips in direct.items() if host_in_domain(h, domain)))
        direct = grouped
    if live:
        addresses = tuple(sorted(set(live.values())))
        return Targets({name: addresses for name in direct}, GATEWAYS, tuple(live), tuple(skipped))
    return Targets({name: tuple(sorted(ips)) for name, ips in direct.items()}, DIRECT, (), tuple(skipped))
