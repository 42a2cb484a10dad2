"""What the agent remembers from one pass to the next: holds, crashes, errors, replicas seen.

* ``services``: a service whose action failed (or whose start-first update rolled back, or whose
  secret is not readable yet) is held: nothing new is tried for it until the hold ends. Success, or
  the service going away, ends it.
* ``restarts``: each restart the agent makes holds that container with a growing delay (a crash loop
  is restarted ever more slowly); a container that stays up ``stable_after`` seconds is forgiven.
* ``crashes`` (``CrashTracker``) and ``times`` (Docker's timestamps on the monotonic clock).
* ``errors``: the last failure of each service, reported in observed state until it is fixed.
* ``seen``: the replicas that had a container, so a creation for a vanished one counts as drift repair.
* ``served``: the containers a plan's ``serving`` map named since the agent started (registered, routed
  by the node Caddy once ready); removing any other one needs no stop grace (``World.served``).

Every time here is monotonic (``clocks.py``). ``record`` is the pass's last step: it learns from what
the executor did and says which creations repaired drift (for events).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from meshop import metrics
from meshop.agent.memory.ages import DockerTimes
from meshop.agent.memory.crashes import CrashTracker
from meshop.agent.memory.holds import Holds
from meshop.agent.planning.plan import (
    Action,
    Container,
    Create,
    NodePlan,
    Note,
    Pull,
    Replace,
    ReplicaKey,
    ServiceTarget,
    Start,
    action_service,
)

log = logging.getLogger(__name__)


class Ledger:
    def __init__(
        self,
        stable_after: float = 10.0,
        restart_backoff: tuple[float, float] = (1.0, 60.0),
        service_backoff: tuple[float, float] = (1.0, 300.0),
    ) -> None:
        self.stable_after = stable_after
        self.services = Holds(*service_backoff)
        self.restarts = Holds(*restart_backoff)
        self.crashes = CrashTracker(stable_after)
        self.times = DockerTimes()
        self.errors: dict[str, Note] = {}
        self.seen: set[ReplicaKey] = set()
        self.served: set[str] = set()

    def serving(self, plan: NodePlan, containers: Sequence[Container]) -> None:
        """Remember what ``plan`` serves (before it is registered); forget containers that are gone."""
        present = {c.id for c in containers}
        self.served = (self.served & present) | set(plan.serving.values())

    def next_release(self, now: float) -> float | None:
        """Seconds until the next hold ends (None: nothing is held)."""
        pending = [d for d in (self.services.next_release(now), self.restarts.next_release(now)) if d is not None]
        return min(pending) if pending else None

    def wait_for_secrets(self, secrets: Mapping[str, object], now: float) -> None:
        """Come back for a secret that could not be read (not written yet, or ``acl sync`` has not yet
        granted this node the service's folder): nothing else wakes the agent when it appears, so
        without this the service would wait for the next resync."""
        held = self.services.held(now)
        for name, value in secrets.items():
            if isinstance(value, Note) and value.reason == "SecretUnavailable" and name not in held:
                self.services.failed(name, now)

    def record(
        self,
        plan: NodePlan,
        done: Sequence[Action],
        errors: Mapping[str, Note],
        containers: Sequence[Container],
        desired: Mapping[str, ServiceTarget],
        now: float,
        after: float,
    ) -> set[ReplicaKey]:
        """Learn from one pass (``now``: when it began; ``after``: once its actions were done, so a
        hold is counted from the failure, not from the start of a long pass). Returns the replicas
        whose creation repaired drift (their container had vanished)."""
        for service, note in errors.items():
            self.errors[service] = note
            delay = self.services.failed(service, after)
            log.info("%s: %s; retrying in %.1fs", service, note.reason, delay)
        acted = {action_service(a) for a in done if not isinstance(a, Pull)}  # a pull merely started
        for service in acted - set(errors):
            self.errors.pop(service, None)
            self.services.succeeded(service)
        for service in plan.rollbacks:
            # the update failed after waiting healthTimeout: do not retry it sooner than that
            self.errors[service] = plan.notes.get(service, Note("UpdateFailed"))
            minimum = desired[service].health_timeout if service in desired else 0.0
            self.services.failed(service, after, minimum=minimum)
        held = self.services.held(now)
        for service in list(self.errors):
            if service not in desired or (
                service not in held and not plan.for_service(service) and service not in plan.notes
            ):
                self.errors.pop(service, None)
                self.services.succeeded(service)
        repaired = {
            (a.service, a.replica)
            for a in done
            if isinstance(a, Create) and a.reason == "missing" and (a.service, a.replica) in self.seen
        }
        for action in done:
            if isinstance(action, Start):
                self.restarts.failed(action.container.id, now)
                self.crashes.started(action.container.id)
                metrics.drift_repairs_total.labels("stopped").inc()
            elif isinstance(action, Replace) and action.reason in ("created-leftover", "dead"):
                metrics.drift_repairs_total.labels(action.reason).inc()
        for _ in repaired:
            metrics.drift_repairs_total.labels("missing").inc()
        for container in containers:
            if container.running and container.started_at and now - container.started_at >= self.stable_after:
                self.restarts.succeeded(container.id)
        self.restarts.forget_except({c.id for c in containers})
        self.services.forget_except(set(desired))
        self.seen = {(c.service, c.replica) for c in containers if c.service in desired} | {
            (a.service, a.replica) for a in done if isinstance(a, Create | Replace)
        }
        return repaired
