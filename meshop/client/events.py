"""``meshop events [OBJECT] [--follow]``: the bounded event log (``events/``), oldest first, and new
entries as they land; optionally only those about one object.

Following uses a blocking-query watch on ``events/`` (no polling). Each writer has a folder of its own
(``events/<writer>/``) whose keys end in a time-ordered segment; events of all writers are merged by that
segment (``event_order``), so "new" is simply "ordered after the last one shown"; an event trimmed from
the log before it was shown is not missed by that rule, only lost with its writer's bound.
"""

from __future__ import annotations

import datetime
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshop.client.cluster import check_access
from meshop.consul.events import event_order
from meshop.consul.store import Entry, KVStore, Listing
from meshop.consul.watch import watch_prefix
from meshop.errors import DocumentError
from meshop.model.keys import EVENTS
from meshop.model.records import Event, loads_json


@dataclass(frozen=True)
class LoggedEvent:
    key: str
    event: Event


def events_in(entries: tuple[Entry, ...], after: str = "") -> list[LoggedEvent]:
    """Readable events of ``entries`` whose key sorts after ``after``, oldest first."""
    out = []
    last = event_order(after)
    for entry in sorted(entries, key=lambda e: event_order(e.key)):
        if event_order(entry.key) <= last:
            continue
        try:
            out.append(LoggedEvent(entry.key, Event.from_dict(loads_json(entry.value))))
        except (ValueError, KeyError, TypeError):
            continue
    return out


KINDS = {"service": "service", "services": "service", "svc": "service", "node": "node", "nodes": "node"}


def object_filter(text: str | None) -> str | None:
    """``service/web``, ``svc/web``, ``node/n1``, ``controller/c1`` -> the object events name; a bare
    ``web`` means ``service/web``. Anything else is refused with the accepted forms."""
    if not text:
        return None
    kind, sep, name = text.partition("/")
    if not sep:
        kind, name = "service", kind
    kind = KINDS.get(kind, kind)
    if kind not in ("service", "node", "controller") or not name or "/" in name:
        raise DocumentError(f"events filter {text!r}: use service/NAME (svc/NAME, NAME), node/NAME or controller/ID")
    return f"{kind}/{name}"


def matches(logged: LoggedEvent, obj: str | None) -> bool:
    return obj is None or logged.event.object == obj


def recent_events(store: KVStore, limit: int, obj: str | None = None) -> list[LoggedEvent]:
    """The newest ``limit`` events (0: none) about ``obj`` (None: all), oldest first."""
    check_access(store)
    events = [e for e in events_in(store.list(EVENTS).entries) if matches(e, obj)]
    return events[-limit:] if limit > 0 else []


def follow_events(store: KVStore, after: str, wait: str = "30s", obj: str | None = None) -> Iterator[LoggedEvent]:
    """Every event about ``obj`` (None: all) appended after key ``after``, as it lands; runs until the
    consumer stops iterating."""
    listings: queue.Queue[Listing] = queue.Queue()
    watch = watch_prefix(store, EVENTS, listings.put, wait=wait)
    try:
        while True:
            for logged in events_in(listings.get().entries, after):
                after = logged.key
                if matches(logged, obj):
                    yield logged
    finally:
        watch.stop()


def iso_time(seconds: float) -> str:
    """``2026-12-01T06:50:00.123Z``: UTC, milliseconds."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(event: Event) -> dict[str, Any]:
    """An event for ``-o json``: the record with ``time`` as an ISO 8601 UTC timestamp."""
    return {**event.to_dict(), "time": iso_time(event.time)}
