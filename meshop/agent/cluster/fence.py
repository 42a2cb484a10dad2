"""Is this the KV the agent was talking to? The node's fence, and the rule that keeps containers safe.

An empty listing of ``assignments/<node>/`` means "remove everything" only if it comes from the KV
that placed those containers. A dev Consul restarted empty, a KV restored from an old snapshot or a
mistaken ``consul kv delete -recurse meshop/`` look exactly like deliberate removals, so the agent
keeps a **fence**: a random token in ``fences/<node>`` that only it writes (check-and-set), remembered
in its state file. It writes a new token whenever the assignments it acts on change, before acting,
so a KV rolled back to any earlier moment holds an older token.

``judge(remembered, pending, fence)`` (pure) decides each pass:

* no token remembered (a new node, or a state file from before fences) and none in KV: **claim** —
  write the first token;
* none remembered, one in KV: **trust** it (a new state dir on a node the KV knows);
* the KV's token is the remembered one (or the one being written when the agent last stopped):
  **trust**;
* the KV has no fence although the agent remembers one: **missing** (the KV was emptied);
* the KV holds another token: **foreign** (restored from a snapshot, or another cluster's KV);
* the KV's fence says ``adopt`` (``meshop cluster adopt``): **adopt** — the operator vouches for it.

Missing and foreign make the pass *not authoritative*: the agent runs its last good assignments as if
Consul were unreachable (nothing removed or replaced, drift repaired), writes nothing but its node
record (``problem`` says why), logs and records an event once, and reports not ready, until the
operator restores the desired state (``meshop import``) and runs ``meshop cluster adopt``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from meshop.agent.cluster.kv import NodeKV
from meshop.agent.cluster.statefile import StateFile
from meshop.consul.store import Entry
from meshop.errors import ConflictError
from meshop.model import keys
from meshop.model.records import Assignment, Fence, dumps, loads_json

log = logging.getLogger(__name__)

Verdict = Literal["claim", "trust", "adopt", "missing", "foreign"]
WRITES = frozenset({"claim", "adopt"})  # verdicts that write a new token before the pass may act
TRUSTED = frozenset({"claim", "trust", "adopt"})


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    problem: str = ""  # for missing / foreign: what the operator reads in `meshop status` and the logs


def judge(remembered: str | None, pending: str | None, fence: Fence | None, node: str) -> Judgement:
    """The rule above; ``pending`` is a token the agent was writing when it last stopped."""
    if fence is not None and fence.adopt:
        return Judgement("adopt")
    if fence is None:
        if remembered is None:
            return Judgement("claim")
        return Judgement("missing", _problem(node, f"it has no fence for node {node} although this agent wrote one"))
    if remembered is None or fence.token in (remembered, pending):
        return Judgement("trust")
    why = f"it holds another fence for node {node} (restored from an old snapshot, or another cluster's KV)"
    return Judgement("foreign", _problem(node, why))


def _problem(node: str, why: str) -> str:
    return (
        f"Consul KV is not the one this agent last talked to: {why}; keeping every container as it runs. "
        f"Restore the desired state (meshop import -f BACKUP) and run `meshop cluster adopt {node}`"
    )


def fingerprint(assignments: Mapping[str, Assignment]) -> dict[str, tuple[str, int, int]]:
    """What the agent acts on, per service: a change here rotates the fence before any action."""
    return {name: (a.spec_hash, a.replicas, a.generation) for name, a in assignments.items()}


def new_token() -> str:
    return secrets.token_hex(8)


class Untrusted(Exception):
    """The KV is not the one the agent talked to; the message is the problem to report."""


class FenceKeeper:
    """Applies ``judge`` to ``fences/<node>`` as read together with the assignments, writes new tokens.

    The fence and the assignments must come from one moment of the KV (``KVStore.list_together``, a
    read-only transaction): a restarted Consul server answers while it still replays its log, so two
    separate reads could pair an empty listing with the restored fence. The agent writes a new token
    only after it has read a changed listing, so any moment of the KV that holds its current token
    also holds every assignment change it acted on.
    """

    def __init__(
        self, store: NodeKV, node: str, state: StateFile | None, clock: Callable[[], float] = time.time
    ):  # wall: the fence record says when, for people
        self.store = store
        self.node = node
        self.state = state
        self.clock = clock  # wall: the fence record says when it was written, for people
        self.remembered = state.fence if state else None
        self.pending = state.pending if state else None

    def confirm(
        self, entry: Entry | None, found: Mapping[str, Assignment], previous: Mapping[str, Assignment] | None
    ) -> Judgement:
        """Judge the KV by ``entry`` (the fence as read with ``found``); on trust, make sure the fence
        names what the agent is about to act on.

        Raises ``Untrusted`` (missing, foreign), ``ConsulError`` (cannot write: the caller treats the
        KV as unreachable) and ``OSError`` from the state file (the same).
        """
        fence: Fence | None = None
        if entry is not None:
            try:
                fence = Fence.from_dict(loads_json(entry.value))
                if fence.node != self.node:
                    raise ValueError(f"it names node {fence.node!r}")
            except (ValueError, KeyError, TypeError) as exc:
                raise Untrusted(
                    f"fences/{self.node} is unreadable ({str(exc)[:100]}); keeping every container as it runs. "
                    f"Run `meshop cluster adopt {self.node}` once the KV is right"
                ) from None
        judgement = judge(self.remembered, self.pending, fence, self.node)
        if judgement.verdict not in TRUSTED:
            raise Untrusted(judgement.problem)
        changed = previous is not None and fingerprint(found) != fingerprint(previous)
        if judgement.verdict in WRITES or changed:
            self._write(fence, entry.modify_index if entry else 0, previous)
        elif fence is not None and fence.token != self.remembered:
            self._remember(fence.token)
        return judgement

    def _write(self, fence: Fence | None, index: int, previous: Mapping[str, Assignment] | None) -> None:
        token = new_token()
        self.pending = token
        if self.state is not None:  # first on disk: a crash after the KV write still knows this token
            self.state.pending = token
            self.state.save(previous or {})
        epoch = (fence.epoch if fence else 0) + 1
        if not self.store.cas(keys.fence(self.node), dumps(Fence(self.node, token, epoch, self.clock())), index):
            raise ConflictError(f"fences/{self.node} changed while this agent wrote it; looking again")
        log.debug("fence of %s is now %s (epoch %d)", self.node, token, epoch)
        self._remember(token)

    def _remember(self, token: str) -> None:
        self.remembered, self.pending = token, None
        if self.state is not None:
            self.state.fence, self.state.pending = token, None
