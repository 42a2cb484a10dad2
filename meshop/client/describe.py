"""``meshop describe service NAME`` and ``meshop get services|nodes [NAME]``: one object in full, read-only.

``describe_service`` gathers everything about one service (document, status, assignments, what each
agent observed, recent events) into a ``ServiceDescription``; the CLI only renders it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshop.client.apply import stored_document
from meshop.client.cluster import Leader, Parsers, Snapshot
from meshop.client.gateways import dns_dict, gateway_rows
from meshop.client.status import NodeRow, ServiceRow, node_rows, service_row
from meshop.consul.events import EventLog
from meshop.consul.kv import Entry
from meshop.consul.store import KVStore
from meshop.errors import NotFound
from meshop.model import keys
from meshop.model.records import Assignment, Event, Observed, ServiceStatus, loads_json
from meshop.model.schema import API_VERSION

RECENT_EVENTS = 10


@dataclass(frozen=True)
class ServiceDescription:
    row: ServiceRow
    document: Mapping[str, Any] | None  # the desired document as stored (None: deleted or unreadable)
    status: ServiceStatus | None
    assignments: Mapping[str, Assignment] = field(default_factory=dict)  # node -> assignment
    observed: Mapping[str, Observed] = field(default_factory=dict)  # node -> what its agent saw
    events: Sequence[Event] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.row.name,
            "summary": self.row.to_dict(),
            "document": self.document,
            "status": self.status.to_dict() if self.status else None,
            "assignments": {node: a.to_dict() for node, a in sorted(self.assignments.items())},
            "observed": {node: o.to_dict() for node, o in sorted(self.observed.items())},
            "events": [e.to_dict() for e in self.events],
        }


def describe_service(store: KVStore, name: str, clock: Callable[[], float] = time.time) -> ServiceDescription:
    """Everything about service ``name``; ``NotFound`` when nothing in KV mentions it."""
    entry = store.get(keys.desired_service(name))
    status_entry = store.get(keys.service_status(name))
    leader = store.get(keys.LEADER)
    assignments = _by_node(store, keys.ASSIGNMENTS, name, Assignment.from_dict)
    observed = _by_node(store, keys.OBSERVED, name, Observed.from_dict)
    if entry is None and status_entry is None and not assignments:
        raise NotFound(f"service/{name} not found: no {store.full_key(keys.desired_service(name))} and no status")
    status = _read(status_entry.value, ServiceStatus.from_dict) if status_entry else None
    snapshot = Snapshot(
        now=clock(),
        services={name: Parsers(store.config.prefix).services.get(entry)} if entry else {},
        statuses={name: status} if status else {},
        leader=Leader.from_entry(leader),
    )
    return ServiceDescription(
        row=service_row(name, snapshot),
        document=stored_document(entry) if entry else None,
        status=status,
        assignments=assignments,
        observed=observed,
        events=EventLog(store, "cli").recent(RECENT_EVENTS, obj=f"service/{name}"),
    )


def service_summaries(snapshot: Snapshot, name: str | None = None) -> list[ServiceRow]:
    names = sorted(set(snapshot.services) | set(snapshot.statuses))
    if name is not None:
        if name not in names:
            raise NotFound(f"service/{name} not found")
        names = [name]
    return [service_row(n, snapshot) for n in names]


def service_objects(snapshot: Snapshot, name: str | None = None) -> list[dict[str, Any]]:
    """``get services -o json|yaml``: per service its stored document, with the server's view under
    ``status`` (the summary row and the controller's status record). ``apply -f -`` takes it back as it
    is: apply, diff and validate drop ``status`` (``meshop.client.sources``)."""
    out = []
    for row in service_summaries(snapshot, name):
        entry = snapshot.service_entries.get(row.name)
        record = snapshot.statuses.get(row.name)
        status = {**(record.to_dict() if record else {}), "summary": row.to_dict()}
        out.append(server_object("Service", row.name, stored_document(entry) if entry else None, status))
    return out


def node_summaries(snapshot: Snapshot, name: str | None = None) -> list[NodeRow]:
    rows = list(node_rows(snapshot))
    if name is not None:
        rows = [row for row in rows if row.name == name]
        if not rows:
            raise NotFound(f"node/{name} not found: no agent registered it and no Node document names it")
    return rows


def node_objects(snapshot: Snapshot, name: str | None = None) -> list[dict[str, Any]]:
    """``get nodes -o json|yaml``: per node its Node document (a bare one when none is stored), with the
    server's view under ``status``: the controller's verdict, the summary row, the agent's record and
    its Consul health."""
    out = []
    for row in node_summaries(snapshot, name):
        record = snapshot.records.get(row.name)
        verdict = snapshot.node_statuses.get(row.name)
        entry = snapshot.node_doc_entries.get(row.name)
        status = {
            **(verdict.to_dict() if verdict else {}),
            "summary": row.to_dict(),
            "record": record.to_dict() if record else None,
            "agentHealth": snapshot.agents.get(row.name),
        }
        out.append(server_object("Node", row.name, stored_document(entry) if entry else None, status))
    return out


def gateway_objects(snapshot: Snapshot, entry: Entry | None, name: str | None = None) -> list[dict[str, Any]]:
    """``get gateway -o json|yaml``: the one Gateway document (``desired/gateway``), with the server's view
    under ``status``: the ``meshop-gateway`` registrations and the DNS writer's record. NotFound when none
    is stored (there is no bare Gateway: its ``domains`` are required) or it is not named ``name``."""
    document = stored_document(entry) if entry else None
    stored_name = ((document or {}).get("metadata") or {}).get("name")
    if document is None or (name is not None and stored_name != name):
        wanted = f"gateway/{name}" if name else "gateway"
        raise NotFound(
            f"{wanted} not found (no Gateway document in {keys.DESIRED_GATEWAY}); write one with meshop apply -f"
        )
    status = {
        "gateways": [row.to_dict() for row in gateway_rows(snapshot.gateways, snapshot.dns)],
        "dns": dns_dict(snapshot.dns),
    }
    return [server_object("Gateway", str(stored_name), document, status)]


def server_object(kind: str, name: str, document: Mapping[str, Any] | None, status: dict[str, Any]) -> dict[str, Any]:
    """A stored document as ``get -o yaml`` prints it: apiVersion, kind, metadata and spec first (as
    people write them), then anything else, then ``status``. Without a stored document (a Service whose
    document was deleted, a Node nobody wrote one for): the bare document. A bare Node applies back as
    "unchanged" (``client.apply.is_bare_node``); a bare Service is invalid (no spec) and says so."""
    doc = dict(document) if document else {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}}
    doc.pop("status", None)  # never stored (the schema refuses it); never two
    first = {key: doc.pop(key) for key in ("apiVersion", "kind", "metadata", "spec") if key in doc}
    return {**first, **doc, "status": status}


def node_observed(store: KVStore, node: str) -> dict[str, Observed]:
    """What node's agent reports per service (``observed/<node>/``): its containers; unreadable records
    (hostile or half-written) are left out."""
    found = {}
    for entry in store.list(keys.node_observed(node)).entries:
        parts = keys.split(entry.key, keys.OBSERVED)
        if len(parts) == 2 and parts[0] == node:
            record = _read(entry.value, Observed.from_dict)
            if record is not None:
                found[parts[1]] = record
    return dict(sorted(found.items()))


def _by_node(store: KVStore, prefix: str, service: str, factory: Callable[[Any], Any]) -> dict[str, Any]:
    result = {}
    for entry in store.list(prefix).entries:
        parts = keys.split(entry.key, prefix)
        if len(parts) == 2 and parts[1] == service:
            record = _read(entry.value, factory)
            if record is not None:
                result[parts[0]] = record
    return result


def _read(value: bytes, factory: Callable[[Any], Any]) -> Any:
    try:
        return factory(loads_json(value))
    except (ValueError, KeyError, TypeError):
        return None
