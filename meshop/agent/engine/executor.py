"""Carries out a plan through the runtime: one service's actions in order, services in parallel.

Per-replica ordering, per-service isolation: the actions of one replica run one after the other
(removals, replacements, creations, starts) and stop at the first failure; different replicas and
services run in parallel (at most ``WORKERS`` at once), so one slow or failing service holds up nobody
else; groups go to the pool in plan order (removals first). Each failure
becomes a ``Note`` (CamelCase reason, message without secrets: a failed create is redacted here again,
whatever runtime raised it) for that service. Pulls are handed to
the background ``Puller``. Every action is counted in ``meshop_actions_total``.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from meshop import metrics
from meshop.agent.engine.puller import Puller
from meshop.agent.engine.runtime import (
    ContainerConfig,
    ContainerGone,
    ImagePullFailed,
    ImageRefused,
    NameConflict,
    Runtime,
    VolumeNotOwned,
)
from meshop.agent.planning.plan import (
    Action,
    Container,
    Create,
    NodePlan,
    Note,
    Pull,
    Remove,
    Replace,
    Start,
    action_kind,
    action_service,
)
from meshop.agent.planning.redact import Redactor
from meshop.errors import DriverError

log = logging.getLogger(__name__)

BuildConfig = Callable[[str, int, str], ContainerConfig]  # (service, replica, config hash) -> config

# Replicas acted on at once. Starting a container is mostly dockerd's and the kernel's work (network
# namespace, veth, iptables, the port proxy: ~0.3 s each on the 2-core development machine); 50 starts
# took the same time with 16, 32 or 50 callers there (benchmarks/apply_breakdown.py, docs/agent.md), so
# more threads buy nothing. Threads are made only as a pass needs them.
WORKERS = 16


@dataclass
class ApplyResult:
    done: list[Action] = field(default_factory=list)
    errors: dict[str, Note] = field(default_factory=dict)  # service -> first failure

    @property
    def changed(self) -> bool:
        """True when something on the engine changed (a pull merely started does not count)."""
        return any(not isinstance(a, Pull) for a in self.done)


class Executor:
    def __init__(self, runtime: Runtime, puller: Puller, *, grace: float = 10.0, workers: int = WORKERS) -> None:
        self.runtime = runtime
        self.puller = puller
        self.grace = grace
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def finished_pulls(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        """Background pulls finished since the last call: (image, services waiting, failure or None)."""
        return self.puller.take_finished()

    def apply(self, plan: NodePlan, build: BuildConfig) -> ApplyResult:
        groups: dict[tuple[str, int, str], list[Action]] = defaultdict(list)
        for action in plan.actions:  # removals, replacements, creations, starts: in that order
            # a removal depends on nothing else: each gets its own group, so many stop in parallel
            own = action.container.id if isinstance(action, Remove) else ""
            groups[(action_service(action), _replica(action), own)].append(action)
        result = ApplyResult()
        if not groups:
            return result
        futures = {key: self._pool.submit(self._apply_group, actions, build) for key, actions in groups.items()}
        for (service, _, _), future in futures.items():
            done, error = future.result()
            result.done.extend(done)
            if error is not None and service not in result.errors:
                result.errors[service] = error
        return result

    def _apply_group(self, actions: list[Action], build: BuildConfig) -> tuple[list[Action], Note | None]:
        done: list[Action] = []
        for action in actions:
            kind = action_kind(action)
            try:
                self._apply_one(action, build)
            except DriverError as exc:
                metrics.actions_total.labels("agent", kind, "error").inc()
                note = _note(action, exc)
                log.warning("%s %s: %s", kind, action_service(action), note.message)
                return done, note
            except Exception as exc:  # one service's bug must not stop the others
                metrics.actions_total.labels("agent", kind, "error").inc()
                log.exception("%s %s crashed", kind, action_service(action))
                return done, Note("InternalError", f"{kind} failed: {type(exc).__name__}")
            metrics.actions_total.labels("agent", kind, "ok").inc()
            done.append(action)
        return done, None

    def _grace(self, container: Container) -> float:
        """Only a live container gets time to stop; a stopped or half-created one goes at once."""
        return self.grace if container.alive else 0.0

    def _apply_one(self, action: Action, build: BuildConfig) -> None:
        if isinstance(action, Pull):
            failure = self.puller.request(action.image, action.service)
            if failure is not None:
                raise ImagePullFailed(failure)
        elif isinstance(action, Remove):
            never = ", never served: no stop grace" if action.kill and action.container.alive else ""
            log.info("removing %s (%s%s)", action.container.name, action.reason, never)
            self.runtime.remove(action.container.id, 0.0 if action.kill else self._grace(action.container))
        elif isinstance(action, Replace):
            for old in action.old:
                log.info("removing %s (%s)", old.name, action.reason)
                self.runtime.remove(old.id, self._grace(old))
            self._create(build(action.service, action.replica, action.config_hash), action.reason)
        elif isinstance(action, Create):
            self._create(build(action.service, action.replica, action.config_hash), action.reason)
        elif isinstance(action, Start):
            log.info("starting %s (%s)", action.container.name, action.reason)
            try:
                self.runtime.start(action.container.id)
            except ContainerGone:
                return  # removed meanwhile; the next pass creates it anew

    def _create(self, config: ContainerConfig, reason: str) -> None:
        log.info("creating %s (%s)", config.name, reason)
        scrub = Redactor(config.secrets)
        try:
            self.runtime.create_and_start(config)
        except DriverError as exc:
            text = str(exc)
            clean = scrub(text)
            if clean != text:
                raise type(exc)(clean) from None
            raise
        except Exception as exc:  # noqa: BLE001 - a bug, not Docker: its traceback may quote the env, scrub it
            log.error("creating %s crashed:\n%s", config.name, scrub(traceback.format_exc()))
            raise DriverError(f"creating {config.name} crashed ({type(exc).__name__})") from None


def _replica(action: Action) -> int:
    if isinstance(action, Pull):
        return -1
    if isinstance(action, Start | Remove):
        return action.container.replica
    return action.replica


def _note(action: Action, exc: DriverError) -> Note:
    if isinstance(exc, ImagePullFailed):
        return Note("ImagePullFailed", str(exc))
    if isinstance(exc, NameConflict):
        return Note("NameConflict", str(exc))
    if isinstance(exc, ImageRefused):
        return Note("ImageRefused", str(exc))
    if isinstance(exc, VolumeNotOwned):
        return Note("VolumeNotOwned", str(exc))
    reasons = {Create: "CreateFailed", Replace: "CreateFailed", Start: "StartFailed", Remove: "RemoveFailed"}
    return Note(reasons.get(type(action), "ActionFailed"), str(exc))
