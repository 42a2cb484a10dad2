"""The agent's entries in the bounded event log (``events/``): what it did to containers, and why.

One entry per happening that an operator asks about afterwards: an image pulled or not, a container
created, crashed (once per crash loop), restarted or replaced to repair drift, rolled back, removed;
and the KV not being recognised (``fence.py``) or trusted again. ``entries`` (pure) derives them from
one pass's actions; ``Journal`` writes what a pass collected at its end, each transaction also
deleting the oldest entries beyond the bound, and never fails the pass: a lost event is logged,
the containers matter more. Messages carry names, replica numbers, reasons and exit codes, never env values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from meshop.agent.planning.plan import Action, Create, Remove, Replace, Start
from meshop.consul.events import EventLog
from meshop.consul.store import MAX_TXN_OPS, KVStore, TxnOp
from meshop.errors import ConsulError

log = logging.getLogger(__name__)

CHUNK = 32  # events per transaction, leaving room for as many deletions of the oldest

Entry = tuple[str, str, str]  # (kind, object, message)

REMOVED = {
    "orphan": "its service is no longer assigned here",
    "scale-down": "scaled down",
    "duplicate": "duplicate",
    "volume-lock": "this node does not hold its stateful volume's lock",
}


def entries(done: Sequence[Action], repaired: Iterable[tuple[str, int]] = ()) -> list[Entry]:
    """Events for the actions of one pass; ``repaired`` are creations that replace a vanished container."""
    repaired = set(repaired)
    out: list[Entry] = []
    for action in done:
        if isinstance(action, Create):
            obj = f"service/{action.service}"
            if (action.service, action.replica) in repaired:
                out.append(("DriftRepaired", obj, f"replica {action.replica}: container was gone; created it again"))
            else:
                why = "next to the old one (start-first update)" if action.reason == "surge" else "created"
                out.append(("Created", obj, f"replica {action.replica}: container {why}"))
        elif isinstance(action, Replace):
            obj = f"service/{action.service}"
            if action.reason == "update":
                out.append(("Replaced", obj, f"replica {action.replica}: replaced with the new spec (stop-first)"))
            else:
                out.append(("DriftRepaired", obj, f"replica {action.replica}: {action.reason} container replaced"))
        elif isinstance(action, Start):
            c = action.container
            out.append(("DriftRepaired", f"service/{c.service}", f"replica {c.replica}: stopped container started"))
        elif isinstance(action, Remove):
            c = action.container
            if action.reason == "rollback":
                continue  # reported as RolledBack
            why = REMOVED.get(action.reason, action.reason)
            out.append(("Removed", f"service/{c.service}", f"replica {c.replica}: container {c.name} removed ({why})"))
    return out


def pull_entries(finished: Iterable[tuple[str, Sequence[str], str | None]]) -> list[Entry]:
    """Events for background pulls that finished: (image, services waiting, failure or None) each."""
    return [
        ("PullFailed", f"service/{service}", failure)
        if failure
        else ("Pulled", f"service/{service}", f"image {image} pulled")
        for image, waiting, failure in finished
        for service in waiting
    ]


class Journal:
    def __init__(self, store: KVStore, node: str) -> None:
        self.log = EventLog(store, f"agent/{node}")
        self.store = store
        self.pending: list[Entry] = []

    def add(self, kind: str, obj: str, message: str) -> None:
        if len(self.pending) < 500:  # a storm is summarised by what fits; the log is bounded anyway
            self.pending.append((kind, obj, message))

    def flush(self) -> int:
        """Write what was collected, each transaction deleting the oldest events beyond the bound (the
        log stays within ``max_events`` exactly); returns how many were written (0 when Consul refused:
        logged)."""
        pending, self.pending = self.pending, []
        if not pending:
            return 0
        written = 0
        try:
            existing = self.store.keys(self.log.folder)  # its own folder: the only one it may trim
            for start in range(0, len(pending), CHUNK):
                puts = [self.log.prepare(*entry) for entry in pending[start : start + CHUNK]]
                excess = max(0, len(existing) + len(puts) - self.log.max_events)
                deletes, existing = existing[:excess], existing[excess:]
                self.store.transact([*puts, *(TxnOp.delete(key) for key in deletes[: MAX_TXN_OPS - len(puts)])])
                existing = [*existing, *(op.key for op in puts)]
                written += len(puts)
                if len(deletes) > MAX_TXN_OPS - len(puts):
                    self.log.trim()  # others overfilled the log: trim the rest in full transactions
        except ConsulError as exc:
            log.warning("could not write %d agent event(s): %s", len(pending) - written, exc)
        return written
