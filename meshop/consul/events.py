"""The bounded event log under ``events/``: what happened, for ``meshop events`` and ``describe``.

Keys sort by time (``events/<ns since epoch, 20 digits>-<random>``), so listing is chronological.
The bound is exact: ``append`` writes the event and deletes the oldest ones beyond ``max_events`` in
one transaction (from a keys-only listing), and a writer that commits prepared events in its own
transactions trims right after each commit (``appended``), so at rest ``events/`` never holds more
than ``max_events`` keys (before: up to ``trim_every`` more; 1001 was seen). Messages must never
carry secrets: callers pass names, reasons and validation paths, never env values.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from meshop.consul.store import KVStore, TxnOp
from meshop.model.keys import EVENTS
from meshop.model.records import Event, dumps, loads_json

log = logging.getLogger(__name__)

MAX_EVENTS = 1000


class EventLog:
    def __init__(
        self,
        store: KVStore,
        component: str,
        *,
        max_events: int = MAX_EVENTS,
        trim_every: int = 1,
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
        keys = self.store.keys(EVENTS)
        excess = keys[: max(0, len(keys) + 1 - self.max_events)]
        put = TxnOp.set(self._key(event), dumps(event))
        self.store.transact([put, *(TxnOp.delete(k) for k in excess[:63])])
        if len(excess) > 63:
            self.trim()
        return event

    def prepare(self, kind: str, obj: str, message: str) -> TxnOp:
        """One event as a transaction operation, for a writer that commits it inside its own (guarded)
        transaction together with the change it reports; call ``appended()`` once that committed."""
        event = Event(time=self.clock(), kind=kind, object=obj, message=message[:1000], component=self.component)
        return TxnOp.set(self._key(event), dumps(event))

    def appended(self, count: int, guard: TxnOp | None = None) -> int:
        """Note ``count`` committed events; trims (each delete transaction led by ``guard``) when due."""
        self._since_trim += count
        if self._since_trim >= self.trim_every:
            return self.trim(guard)
        return 0

    def trim(self, guard: TxnOp | None = None) -> int:
        """Delete the oldest events beyond ``max_events``; returns how many went."""
        self._since_trim = 0
        keys = self.store.keys(EVENTS)
        excess = keys[: max(0, len(keys) - self.max_events)]
        chunk = 63 if guard else 64
        for start in range(0, len(excess), chunk):
            deletes = [TxnOp.delete(key) for key in excess[start : start + chunk]]
            self.store.transact([guard, *deletes] if guard else deletes)
        return len(excess)

    @staticmethod
    def _key(event: Event) -> str:
        return f"{EVENTS}{int(event.time * 1e9):020d}-{secrets.token_hex(3)}"

    def recent(self, limit: int = 50, obj: str | None = None) -> list[Event]:
        """The newest ``limit`` events, oldest first; optionally only those about ``obj``."""
        events = []
        for entry in self.store.list(EVENTS).entries:
            try:  # agents write events too: a refused one is left out, never the whole log
                events.append(Event.from_dict(loads_json(entry.value)))
            except ValueError as exc:
                log.warning("ignoring unreadable event %s: %s", entry.key, exc)
        if obj is not None:
            events = [event for event in events if event.object == obj]
        return events[-limit:]
