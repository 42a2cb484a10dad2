"""Named volumes are unambiguous across services. Pure.

An agent names a service's volume ``meshop-<node>-<service>-<volume>`` on the node's engine. Names are
RFC 1123 labels, which may hold '-', so two different (service, volume) pairs can join to the same
Docker name (service ``db`` + volume ``data-x`` and service ``db-data`` + volume ``x``), and the later
service would mount the other's data. The service whose document was created first (Consul's
CreateIndex, then by name) keeps the name; every other claimant is invalid (``Valid=False`` naming the
owner) until it picks another volume name, and its last valid version keeps running.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshop.errors import Violation
from meshop.operator.desired import ParsedService


def docker_volume_suffix(service: str, volume: str) -> str:
    """What follows ``meshop-<node>-`` in the Docker volume's name (see ``meshop.agent.planning.labels``)."""
    return f"{service}-{volume}"


def claim_volumes(parsed: Mapping[str, ParsedService]) -> dict[str, ParsedService]:
    """``parsed`` with every valid service whose volume name another service already owns made invalid."""
    claims: dict[str, list[tuple[int, str, str]]] = {}  # suffix -> (created, service, volume)
    for name, item in parsed.items():
        if item.desired is None:
            continue
        for volume in item.desired.spec.get("volumes") or ():
            vol = volume.get("name") if isinstance(volume, Mapping) else None
            if isinstance(vol, str) and vol:
                claims.setdefault(docker_volume_suffix(name, vol), []).append((item.created or 2**62, name, vol))
    losers: dict[str, list[Violation]] = {}
    for suffix, claimants in claims.items():
        if len({service for _, service, _ in claimants}) < 2:
            continue
        _, owner, owner_volume = min(claimants)
        for _, service, vol in claimants:
            if service != owner:
                why = (
                    f"volume {vol!r} would be Docker volume meshop-<node>-{suffix}, which is volume "
                    f"{owner_volume!r} of service {owner} (created first): choose another volume name"
                )
                losers.setdefault(service, []).append(Violation("spec.volumes", why))
    result = dict(parsed)
    for service, violations in losers.items():
        item = parsed[service]
        result[service] = ParsedService(item.name, item.generation, None, tuple(violations), item.created)
    return result
