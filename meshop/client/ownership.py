"""Route hosts are owned: ``validate --cluster``, ``diff`` and ``apply`` refuse a Service whose route host
belongs to another service, naming the owner, or is the dashboard's (the stored Gateway document's
``spec.dashboard.host``), before anything is written. Pure, but for ``read_claims``.

The rule is the controller's (``meshop.operator.routes.host_owners``): the service a ``routes/<host>``
record names keeps the host while its document exists and still routes that host (an invalid document
whose last valid version runs keeps it too); a host no record holds goes to the document created first.
A document being applied counts as created now, unless it replaces a stored one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from meshop.client.apply import canonical
from meshop.client.sources import SourcedDocument
from meshop.consul.store import Entry, KVStore
from meshop.errors import Violation
from meshop.model import keys
from meshop.model.records import RouteRecord, loads_json
from meshop.operator.desired import gateway_hosts, parse_service_entry
from meshop.operator.routes import conflict_message, dashboard_message, host_owners
from meshop.operator.view import DesiredService, RouteSpec

NEWEST = 2**62  # the CreateIndex a document not yet stored gets: after every stored one


@dataclass(frozen=True)
class Claims:
    """What the cluster says about route hosts: the stored Service documents and route records."""

    services: Mapping[str, Entry]  # name -> desired/services/<name>
    routes: Mapping[str, RouteRecord]  # host -> record
    dashboard_host: str = ""  # the stored Gateway document's spec.dashboard.host: nobody's route


def route_hosts(documents: Sequence[SourcedDocument]) -> set[str]:
    """The route hosts the Service documents being applied claim."""
    hosts = set()
    for item in documents:
        route = item.doc.get("spec", {}).get("route") if item.doc.get("kind") == "Service" else None
        if isinstance(route, dict) and isinstance(route.get("host"), str):
            hosts.add(route["host"])
    return hosts


def read_claims(store: KVStore, hosts: set[str]) -> Claims:
    """The route records of ``hosts`` (a GET each) and the stored Service documents that could claim one
    of them: one listing of ``desired/services/``, of which only the documents whose text holds one of the
    hosts are kept (and later parsed), so an apply stays cheap in a cluster of thousands of services."""
    needles = [host.encode() for host in hosts]
    services = {
        e.key[len(keys.DESIRED_SERVICES) :]: e
        for e in store.list(keys.DESIRED_SERVICES).entries
        if any(needle in e.value for needle in needles)
    }
    routes: dict[str, RouteRecord] = {}
    for host in sorted(hosts):
        entry = store.get(keys.route(host))
        if entry is None:
            continue
        try:
            routes[host] = RouteRecord.from_dict(loads_json(entry.value))
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: the controller rewrites it
    for record in routes.values():  # the owner's document, when its text does not name the host (YAML)
        if record.service not in services:
            entry = store.get(keys.desired_service(record.service))
            if entry is not None:
                services[record.service] = entry
    gateway = store.get(keys.DESIRED_GATEWAY)
    return Claims(services, routes, gateway_hosts(gateway)[1] if gateway is not None else "")


def route_violations(
    documents: Sequence[SourcedDocument], claims: Claims, prefix: str = keys.DEFAULT_PREFIX
) -> list[Violation]:
    """One violation per applied Service whose route host another service owns (or would own);
    ``prefix`` is meshop's KV prefix (documents are validated against it, as the controller does)."""
    entries = dict(claims.services)
    applied: dict[str, str] = {}  # service -> source
    for item in documents:
        if item.doc.get("kind") != "Service":
            continue
        name = item.doc["metadata"]["name"]
        stored = entries.get(name)
        created = stored.create_index if stored else NEWEST + len(applied)
        entries[name] = Entry(keys.desired_service(name), canonical(item.doc).encode(), NEWEST, created)
        applied[name] = item.source
    parsed = {name: parse_service_entry(name, entry, prefix) for name, entry in entries.items()}
    services = {name: p.desired for name, p in parsed.items() if p.desired is not None}
    previous = {}
    for host, record in claims.routes.items():
        owner = parsed.get(record.service)
        if owner is not None and owner.desired is None and record.service not in applied:
            # an invalid document whose last valid version runs keeps its host: keep it a claimant
            services[record.service] = _claimant(record, owner.created)
        previous[host] = record
    owners = host_owners(services, previous)
    violations = []
    for name, source in applied.items():
        service = services.get(name)
        if service is None or service.route is None:
            continue
        if service.route.host == claims.dashboard_host:
            violations.append(Violation(f"{source}: spec.route.host", dashboard_message(service.route.host)))
            continue
        owner = owners[service.route.host]
        if owner != name:
            violations.append(Violation(f"{source}: spec.route.host", conflict_message(service.route.host, owner)))
    return violations


def _claimant(record: RouteRecord, created: int) -> DesiredService:
    return replace(DesiredService(record.service, 0, route=RouteSpec(record.host, record.path)), created=created)
