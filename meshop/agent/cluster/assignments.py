"""Reading this node's assignments, and whether the KV they come from may be acted on.

Each pass reads ``assignments/<node>/`` together with the node's fence (one transaction, ``fence.py``).
When both answer and the KV is the one the agent talked to, the reading is **authoritative**: what is
not assigned may be removed. Otherwise (Consul unreachable, or emptied / rolled back) the agent falls
back to its last good assignments (memory, then the state file) and the pass only repairs.

An assignment that does not parse (or names another service or node) is *unreadable*: the last good
version keeps running and the service reports ``InvalidAssignment``. Every good reading is saved to the
state file (atomic), so a restarted agent that cannot reach Consul runs what it ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from meshop import metrics
from meshop.agent.cluster.fence import FenceKeeper, Untrusted
from meshop.agent.cluster.kv import NodeKV
from meshop.agent.cluster.statefile import StateFile
from meshop.agent.planning import labels as L
from meshop.agent.planning.plan import Note
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.records import Assignment, loads_json

log = logging.getLogger(__name__)


class EventNotes(Protocol):
    """Where the reader notes an event (``journal.Journal``; the reconciler's ``EventSink`` adds a flush)."""

    def add(self, kind: str, obj: str, message: str, /) -> None: ...


@dataclass(frozen=True)
class Reading:
    """One pass's assignments and how far they may be trusted."""

    assignments: dict[str, Assignment]
    unreadable: dict[str, Note] = field(default_factory=dict)  # service -> why its assignment is unreadable
    authoritative: bool = True  # False: from memory or the state file: delete nothing
    error: ConsulError | None = None  # Consul could not be read: the pass fails at its end, after repairs
    regained: bool = False  # authoritative again after a pass that was not (Consul may have restarted empty)


class AssignmentReader:
    def __init__(
        self, store: NodeKV, node: str, state: StateFile | None, journal: EventNotes, wall: Callable[[], float]
    ) -> None:
        self.store = store
        self.node = node
        self.state = state
        self.journal = journal
        self.cached: dict[str, Assignment] | None = state.load() if state else None
        self.fence = FenceKeeper(store, node, state, wall)  # after the load: it starts from the file's fence
        self.authoritative = False
        self.kv_problem = ""  # set while the KV is not the one this agent talked to (see fence.py)
        if self.cached is not None:
            log.info("loaded %d assignment(s) from %s", len(self.cached), state.path if state else "")

    @property
    def prefix(self) -> str:
        """The KV prefix (secrets of a service must live under it)."""
        return self.store.config.prefix

    def read(self) -> Reading:
        """Never raises for Consul: an unreachable or unrecognised KV is a non-authoritative reading."""
        before = self.authoritative
        try:
            assignments, unreadable = self._read()
        except ConsulError as exc:
            metrics.consul_errors_total.labels("agent", "assignments").inc()
            self.authoritative = False
            return Reading(dict(self.cached or {}), authoritative=False, error=exc)
        except Untrusted as exc:
            self.authoritative = False
            self._kv_problem(str(exc))
            return Reading(dict(self.cached or {}), authoritative=False)
        self.authoritative = True
        self._kv_problem("")
        return Reading(assignments, unreadable, regained=not before)

    def _read(self) -> tuple[dict[str, Assignment], dict[str, Note]]:
        prefix = keys.node_assignments(self.node)
        listing, fences = self.store.list_together([prefix, keys.fence(self.node)])
        fence = next((e for e in fences.entries if e.key == keys.fence(self.node)), None)
        found: dict[str, Assignment] = {}
        unreadable: dict[str, Note] = {}
        previous = self.cached or {}
        for entry in listing.entries:
            parts = keys.split(entry.key, prefix)
            if len(parts) != 1 or not L.is_label(parts[0]):
                log.warning("ignoring key %s: not assignments/<node>/<service>", entry.key)
                continue
            name = parts[0]
            try:
                assignment = Assignment.from_dict(loads_json(entry.value))
                if assignment.service != name or assignment.node != self.node:
                    raise ValueError(f"it names service {assignment.service!r} on node {assignment.node!r}")
            except (ValueError, KeyError, TypeError) as exc:
                note = Note("InvalidAssignment", f"assignment {name} is unreadable: {exc}"[:300])
                if name in previous:
                    found[name] = previous[name]  # keep running the last good version
                unreadable[name] = note
                continue
            found[name] = assignment
        try:
            self.fence.confirm(fence, found, self.cached)
        except OSError as exc:  # the pending token could not be kept: do not act on a change
            raise ConsulError(f"could not save the fence to {self.state.path if self.state else ''}: {exc}") from None
        self.cached = found
        if self.state is not None:
            try:
                self.state.save(found)
            except OSError as exc:
                log.warning("could not save assignments to %s: %s", self.state.path, exc)
        return found, unreadable

    def _kv_problem(self, problem: str) -> None:
        """Log (once per change) why the agent does not trust the KV; the node record and /readyz show it."""
        if problem == self.kv_problem:
            return
        if problem:
            log.error("%s", problem)
            self.journal.add("KVNotRecognized", f"node/{self.node}", problem)
        else:
            log.warning("the KV is trusted again (fence confirmed)")
            self.journal.add("KVAdopted", f"node/{self.node}", "the KV is trusted again; acting on its assignments")
        self.kv_problem = problem
