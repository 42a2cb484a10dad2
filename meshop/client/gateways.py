"""Gateways and DNS for ``meshop status``: rows from the ``meshop-gateway`` registrations and the DNS
writer's ``status/dns`` (pure; the snapshot reads them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from meshop.consul.services import InstanceHealth
from meshop.model.names import is_dns_label
from meshop.model.records import DnsStatus

GATEWAY_SERVICE = "meshop-gateway"


@dataclass(frozen=True)
class GatewayRow:
    gateway_id: str
    address: str
    health: str  # passing | warning | critical
    in_dns: bool  # the DNS writer last pointed records at it
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.gateway_id,
            "address": self.address,
            "health": self.health,
            "inDNS": self.in_dns,
            "output": self.output,
        }


def gateway_rows(instances: Iterable[InstanceHealth], dns: DnsStatus | None) -> tuple[GatewayRow, ...]:
    pointed = set(dns.gateways) if dns else set()
    rows = []
    for inst in instances:
        gid = inst.service_id.removeprefix(f"{GATEWAY_SERVICE}-")
        if gid == inst.service_id or not is_dns_label(gid):
            continue
        address = (inst.service_address or inst.address)[:64]
        rows.append(GatewayRow(gid, address, inst.status, gid in pointed, inst.output[:200]))
    return tuple(sorted(rows, key=lambda r: r.gateway_id))


def dns_dict(dns: DnsStatus | None) -> dict[str, Any] | None:
    return None if dns is None else dns.to_dict()
