"""``meshop events [OBJECT] [--follow]``: the bounded event log (``events/``), oldest first, and new
entries as they land; optionally only those about one object.

Following uses a blocking-query watch on ``events/`` (no polling). Each writer has a folder of its own
(``events/<writer>/``) whose keys end in a time-ordered segment; events of all writers are merged by that
segment (``event_order``). "New" is a key the previous listing did not hold (not "ordered after the last
one shown": one event dated ahead would hide all later ones); an event trimmed from the log before it was
shown is lost with its writer's bound. A writer may write anything in its own folder, so an event whose
body names another writer or another time than its key is not shown (``consul.events.event_problem``).
"""

from __future__ import annotations

import datetime
import queue
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from meshop.client.cluster import check_access
from meshop.consul.events import event_order, read_events
from meshop.consul.store import Entry, KVStore, Listing
from meshop.consul.watch import watch_prefix
from meshop.errors import DocumentError
from meshop.model.keys import EVENTS
from meshop.model.records import Event


@dataclass(frozen=True)
class LoggedEvent:
    key: str
    event: Event


def events_in(entries: Iterable[Entry]) -> list[LoggedEvent]:
    """The events of ``entries`` that may be shown (``read_events``), oldest first."""
    return [LoggedEvent(key, event) for key, event in read_events(entries)]


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
    consumer stops iterating. "Appended" means not in the previous listing, not "sorts after the last one
    shown": a writer's event dated ahead of the others (a skewed clock, or a compromised node's, in its own
    folder) would otherwise hide every later event (issue 24)."""
    listings: queue.Queue[Listing] = queue.Queue()
    watch = watch_prefix(store, EVENTS, listings.put, wait=wait)
    shown: set[str] | None = None
    try:
        while True:
            entries = listings.get().entries
            if shown is None:  # the first answer: what sorts up to ``after`` was shown before
                shown = {e.key for e in entries if event_order(e.key) <= event_order(after)}
            for logged in events_in(e for e in entries if e.key not in shown):
                if matches(logged, obj):
                    yield logged
            shown = {e.key for e in entries}  # what a listing no longer holds is forgotten: bounded
    finally:
        watch.stop()


def iso_time(seconds: float) -> str:
    """``2026-12-01T06:50:00.123Z``: UTC, milliseconds."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(event: Event) -> dict[str, Any]:
    """An event for ``-o json``: the record with ``time`` as an ISO 8601 UTC timestamp."""
    return {**event.to_dict(), "time": iso_time(event.time)}
