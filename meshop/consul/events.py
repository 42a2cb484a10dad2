"""The bounded event log under ``events/``: what happened, for ``meshop events`` and ``describe``.

Each writer appends to a folder of its own, ``events/<writer>/<ns since epoch, 20 digits>-<random>``:
``controller``, ``agent-<node>``, and ``audit`` (the dashboard's actions). Each role's token may write
only its own folder (issue 24: before, any agent token could overwrite or delete the whole log, the
audit records included), and readers merge the folders by the key's last segment, which sorts by time
(``event_order``).

The bound is per writer: a writer may delete only in its own folder, so ``append`` writes the event
and deletes the oldest of *its own* beyond ``max_events`` in one transaction (from a keys-only
listing), and a writer that commits prepared events in its own transactions trims right after each
commit (``appended``). At rest each folder holds at most ``max_events`` keys, so ``events/`` holds at
most ``max_events`` per writer. Messages must never carry secrets: callers pass names, reasons and
validation paths, never env values.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable

from meshop.consul.store import Entry, KVStore, TxnOp
from meshop.model.keys import AUDIT_EVENTS, EVENTS, events_of
from meshop.model.records import Event, dumps, loads_json

log = logging.getLogger(__name__)

MAX_EVENTS = 1000  # per writer
AUDIT_COMPONENTS = ("dashboard", "cli")  # what people did: kept in events/audit/, where no agent writes


def writer_of(component: str) -> str:
    """The folder a component's events go to: ``agent/n1`` -> ``agent-n1``, the dashboard and the CLI
    -> ``audit``, anything else its own name."""
    return AUDIT_EVENTS if component in AUDIT_COMPONENTS else component.replace("/", "-")


def event_order(key: str) -> tuple[str, str]:
    """Sort key of an event key across writers' folders: its time-ordered last segment, then the key."""
    return key.rpartition("/")[2], key


def event_problem(key: str, event: Event) -> str | None:
    """Why the event read at ``key`` is not shown, or None. A writer's token may write anything in its own
    folder, so what the body says is checked against where it lies (issue 24): its component must be one
    that writes to that folder (n1's agent cannot pose as the dashboard's audit, the controller or n2), and
    its time must be the one its key sorts it by (it cannot show an old time while sorting last). Events of
    the older layout (``events/<ns>-<id>``, no folder) are checked for time only."""
    writer, _, segment = key.removeprefix(EVENTS).rpartition("/")
    if not 0 <= event.time < 1e11:  # 20 digits of nanoseconds
        return f"its time {event.time!r} is out of range"
    if segment.partition("-")[0] != f"{int(event.time * 1e9):020d}":
        return f"its time {event.time!r} is not the one its key sorts it by"
    if writer and writer_of(event.component) != writer:
        return f"component {event.component!r} does not write to {EVENTS}{writer}/"
    return None


def read_events(entries: Iterable[Entry]) -> list[tuple[str, Event]]:
    """(key, event) of every readable event in ``entries`` in time order; one that does not decode or
    whose body disagrees with its key (``event_problem``) is left out, never the whole log. Logged at
    debug only: the dashboard reads the log at every refresh, and a node can write many such events."""
    found = []
    for entry in sorted(entries, key=lambda e: event_order(e.key)):
        try:
            event = Event.from_dict(loads_json(entry.value))
        except ValueError as exc:
            log.debug("ignoring unreadable event %s: %s", entry.key, exc)
            continue
        problem = event_problem(entry.key, event)
        if problem is not None:
            log.debug("ignoring event %s: %s", entry.key, problem)
            continue
        found.append((entry.key, event))
    return found


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
        self.folder = events_of(writer_of(component))
        self.max_events = max_events
        self.trim_every = trim_every
        self.clock = clock
        self._since_trim = 0

    def append(self, kind: str, obj: str, message: str) -> Event:
        event = Event(time=self.clock(), kind=kind, object=obj, message=message[:1000], component=self.component)
        keys = self.store.keys(self.folder)
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
        """Delete this writer's oldest events beyond ``max_events``; returns how many went."""
        self._since_trim = 0
        keys = self.store.keys(self.folder)
        excess = keys[: max(0, len(keys) - self.max_events)]
        chunk = 63 if guard else 64
        for start in range(0, len(excess), chunk):
            deletes = [TxnOp.delete(key) for key in excess[start : start + chunk]]
            self.store.transact([guard, *deletes] if guard else deletes)
        return len(excess)

    def _key(self, event: Event) -> str:
        return f"{self.folder}{int(event.time * 1e9):020d}-{secrets.token_hex(3)}"

    def recent(self, limit: int = 50, obj: str | None = None) -> list[Event]:
        """The newest ``limit`` events of every writer, oldest first; optionally only those about ``obj``."""
        events = [event for _, event in read_events(self.store.list(EVENTS).entries)]
        if obj is not None:
            events = [event for event in events if event.object == obj]
        return events[-limit:]
