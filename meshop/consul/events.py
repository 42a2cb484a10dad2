"""The bounded event log under ``events/``: what happened, for ``meshop events`` and ``describe``.

Keys sort by time (``events/<ns since epoch, 20 digits>-<random>``), so listing is chronological.
After every ``trim_every`` appends the oldest entries beyond ``max_events`` are deleted, keeping the
log bounded without a read on every write. Messages must never carry secrets: callers pass names,
reasons and validation paths, never env values.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from meshop.consul.store import KVStore, TxnOp
from meshop.model.keys import EVENTS
from meshop.model.records import Event, dumps, loads_json

MAX_EVENTS = 1000


class EventLog:
    def __init__(
        self,
        store: KVStore,
        component: str,
        *,
        max_events: int = MAX_EVENTS,
        trim_every: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.component = component
        self.max_events = max_events
        self.trim_every = trim_every
        self.clock = clock
        self._since_trim = 0

    def append(self, kind: str, obj: str, message: str) -> Event:
        event = Event(time=self.clock(), kind=kind, object=obj, message=message[:1000], component=self.component)
        key = f"{EVENTS}{int(event.time * 1e9):020d}-{secrets.token_hex(3)}"
        self.store.put(key, dumps(event))
        self._since_trim += 1
        if self._since_trim >= self.trim_every:
            self.trim()
        return event

    def trim(self) -> int:
        """Delete the oldest events beyond ``max_events``; returns how many went."""
        self._since_trim = 0
        entries = self.store.list(EVENTS).entries
        excess = entries[: max(0, len(entries) - self.max_events)]
        for start in range(0, len(excess), 64):
            self.store.transact([TxnOp.delete(entry.key) for entry in excess[start : start + 64]])
        return len(excess)

    def recent(self, limit: int = 50, obj: str | None = None) -> list[Event]:
        """The newest ``limit`` events, oldest first; optionally only those about ``obj``."""
        events = [Event.from_dict(loads_json(entry.value)) for entry in self.store.list(EVENTS).entries]
        if obj is not None:
            events = [event for event in events if event.object == obj]
        return events[-limit:]
