"""The fence: kills a stateful copy whose lease ran out, whether or not the agent is alive.

``meshop fence run`` (its own process and systemd unit, ``meshop-fence.service``) needs no Consul and
none of the agent's reconcile machinery: the lease folder (``leases.py``) and the Docker engine. Every
``FENCE_TICK`` it writes its heartbeat, reads the leases and SIGKILLs each running container of this
node labelled ``meshop.stateful=true`` whose service has no lease, an untrusted one or one past its
deadline (``allowed`` below, pure). The agent writes a service's lease after each successful renewal
of its volume locks, ``deadline = t0 + GIVE_UP`` (``t0``: the renewal request's start), so a copy left
behind by a crashed, stopped or hung agent is dead by ``t0 + GIVE_UP + FENCE_TICK + KILL_BUDGET``,
before any other node may take its lock (``timing.py``, docs/stateful.md). A folder that cannot be
trusted (a link, another owner, open to others) holds no lease: every copy dies.

The fence itself leaves copies alone when it stops; the agent's watchdog still guards them, and the
agent starts none while the fence's heartbeat is stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Set
from typing import Protocol

from meshop.agent.stateful import timing
from meshop.agent.stateful.leases import Lease, LeaseDir, Untrusted
from meshop.errors import DriverError

log = logging.getLogger(__name__)


class Killer(Protocol):
    """``engine.docker_driver.DockerDriver``: SIGKILL this node's running stateful copies but ``allowed``."""

    def kill_unlocked(self, allowed: Set[str], /) -> list[str]: ...


def allowed(leases: Mapping[str, Lease | Untrusted], now: float) -> frozenset[str]:
    """The services whose copies may run at ``now`` (monotonic): those with a trusted lease not yet past
    its deadline. Every other running stateful copy is killed."""
    return frozenset(s for s, lease in leases.items() if isinstance(lease, Lease) and now <= lease.deadline)


class Fence:
    def __init__(
        self,
        folder: LeaseDir,
        killer: Killer,
        *,
        mono: Callable[[], float] = time.monotonic,
        tick: float = timing.FENCE_TICK,
    ) -> None:
        self.folder, self.killer, self.mono, self.tick = folder, killer, mono, tick
        self._complaint = ""  # the last problem logged, so a lasting one is logged once

    def look(self) -> list[str]:
        """One look: beat, read the leases, kill what may not run. The services whose copies it killed."""
        now = self.mono()
        problems = []
        try:
            self.folder.beat(now)
        except (OSError, Untrusted) as exc:  # the agent then starts nothing; running copies still guarded
            problems.append(f"cannot write the heartbeat: {exc}")
        try:
            leases = self.folder.leases()
        except (OSError, Untrusted) as exc:
            problems.append(f"trusting no lease: {exc}")
            leases = {}
        for service, lease in sorted(leases.items()):
            if isinstance(lease, Untrusted):
                problems.append(f"lease of {service} untrusted: {lease}")
        self._complain("; ".join(problems))
        killed = self.killer.kill_unlocked(allowed(leases, now))
        for service in killed:
            lease = leases.get(service)
            why = "no lease" if lease is None else str(lease) if isinstance(lease, Untrusted) else "its lease expired"
            log.warning("fence: killed a copy of %s (%s)", service, why)
        return killed

    def _complain(self, problem: str) -> None:
        if problem != self._complaint:
            (log.error if problem else log.info)("fence: %s", problem or "the lease folder is in order again")
            self._complaint = problem

    def run(self, stop: threading.Event) -> None:
        """Look every ``tick`` until ``stop`` is set; an engine that does not answer is retried each tick."""
        log.info("fence watching stateful containers, leases in %s", self.folder.path)
        while True:
            began = self.mono()
            try:
                self.look()
            except DriverError as exc:
                self._complain(f"the Docker engine cannot list or kill: {exc}")
            except Exception:  # a bug must not end the fence; systemd would restart it, but a look is cheaper
                log.exception("fence look failed")
            if stop.wait(max(0.0, self.tick - (self.mono() - began))):
                return
