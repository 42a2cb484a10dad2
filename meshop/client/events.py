"""``meshop events [--follow]``: the bounded event log (``events/``), oldest first, and new entries as they land.

Following uses a blocking-query watch on ``events/`` (no polling). Keys sort by time, so "new" is simply
"a key after the last one shown"; an event trimmed from the log before it was shown is not missed by
that rule, only lost with the log's bound.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass

from meshop.client.cluster import check_access
from meshop.consul.store import Entry, KVStore, Listing
from meshop.consul.watch import watch_prefix
from meshop.model.keys import EVENTS
from meshop.model.records import Event, loads_json


@dataclass(frozen=True)
class LoggedEvent:
    key: str
    event: Event


def events_in(entries: tuple[Entry, ...], after: str = "") -> list[LoggedEvent]:
    """Readable events of ``entries`` whose key sorts after ``after``, oldest first."""
    out = []
    for entry in sorted(entries, key=lambda e: e.key):
        if entry.key <= after:
            continue
        try:
            out.append(LoggedEvent(entry.key, Event.from_dict(loads_json(entry.value))))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def recent_events(store: KVStore, limit: int) -> list[LoggedEvent]:
    """The newest ``limit`` events (0: none), oldest first."""
    check_access(store)
    events = events_in(store.list(EVENTS).entries)
    return events[-limit:] if limit > 0 else []


def follow_events(store: KVStore, after: str, wait: str = "30s") -> Iterator[LoggedEvent]:
    """Every event appended after key ``after``, as it lands; runs until the consumer stops iterating."""
    listings: queue.Queue[Listing] = queue.Queue()
    watch = watch_prefix(store, EVENTS, listings.put, wait=wait)
    try:
        while True:
            for logged in events_in(listings.get().entries, after):
                after = logged.key
                yield logged
    finally:
        watch.stop()
