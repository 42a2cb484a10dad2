"""One reconcile pass of the node agent: read, plan, register, act, report; each a named step.

1. **read**: this node's assignments with its fence (``cluster/assignments.py``; not *authoritative*
   when Consul does not answer or the KV is not the one the agent talked to: then nothing is deleted,
   only repaired), parsed and checked, their secrets and bind mounts resolved; the node's managed
   containers, their Docker times moved onto the monotonic clock (``memory/ages.py``).
2. **plan**: ``planning/planner.py``, pure. Assignments that moved meanwhile are read once more.
3. **register**: Consul's replica registrations and the node Caddy's routes follow the plan's
   ``serving`` map *before* anything is removed or restarted (a plan that only creates starts its
   containers first: a Consul round trip off their way).
4. **act**: the executor applies the plan (a container this agent never served is killed, not stopped:
   ``World.served``); ``memory`` learns from what it did. Once a pass with Consul answering has acted,
   ``on_answered`` lets the heartbeat report the node back (``cluster/presence.py``).
5. **report**: observed state where it changed, events, volumes of removed services.

A Consul failure fails the pass at its end (after the containers were seen to), so the loop retries
and ``/readyz`` says why; a service's failure only holds that service. Durations are monotonic (``clocks.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from meshop import metrics
from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.cluster.assignments import Reading
from meshop.agent.cluster.journal import entries, pull_entries
from meshop.agent.cluster.registrations import PROBE_REFRESH
from meshop.agent.engine.executor import ApplyResult
from meshop.agent.engine.hostpaths import resolve_all
from meshop.agent.engine.probes import probe_targets
from meshop.agent.engine.volumes import remove_released
from meshop.agent.memory.ledger import Ledger
from meshop.agent.parts import ClusterParts, EngineParts, NodeRoutes
from meshop.agent.planning.intake import Binds, Intake, Parsed, Secrets, config_builder, service_targets, specs_of
from meshop.agent.planning.labels import volume_name
from meshop.agent.planning.phases import Assigned, CrashInfo, container_phases
from meshop.agent.planning.plan import Container, Create, NodePlan, Note, Pull, ServiceTarget, World
from meshop.agent.planning.planner import plan
from meshop.agent.planning.report import node_records
from meshop.agent.stateful.timing import RENEW_EVERY
from meshop.errors import ConsulAccessDenied, ConsulError, DriverError
from meshop.model import Policy, ServiceSpec

log = logging.getLogger(__name__)

AFTER_CHANGE = 0.05  # look again this soon after a pass that changed something
DRIVER_RETRY = 2.0  # look again this soon when the Docker engine did not answer
LOCK_RETRY = RENEW_EVERY  # look again this soon while a stateful service waits for its volume lock
# A replica's first registration is refused until `acl sync` widened its node's policy (~0.1 s after the
# placement) and the node's Consul client dropped the policy it cached (`policy_ttl` 5 s): retried this
# soon, up to DENIED_QUICK_TRIES passes in a row (6 s), before the loop's own backoff (2, 4, 8 s) takes over.
DENIED_RETRY = 0.5
DENIED_QUICK_TRIES = 12


def retry_denial_soon(error: ConsulError, errors: Sequence[ConsulError | None], denials: int) -> bool:
    """Pure: retry the pass in DENIED_RETRY instead of failing it when its only error is an ACL refusal
    of a registration, for the first DENIED_QUICK_TRIES such passes in a row (a refusal that lasts is a
    real one: it then fails the pass, logged and backed off as any other)."""
    only = [e for e in errors if e is not None] == [error]
    return only and isinstance(error, ConsulAccessDenied) and 0 < denials <= DENIED_QUICK_TRIES


@dataclass(frozen=True)
class AgentSettings:
    node: str
    advertise_addr: str
    publish_addr: str = ""  # default: the advertise address
    labels: Mapping[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    bind_mounts: tuple[str, ...] = ()  # host folders bind mounts may come from (--allow-bind-mount)
    drain: float = 1.0
    stop_grace: float = 10.0
    stable_after: float = 10.0  # running this long resets a container's restart backoff
    restart_backoff: tuple[float, float] = (1.0, 60.0)
    service_backoff: tuple[float, float] = (1.0, 300.0)

    @property
    def publish(self) -> str:
        return self.publish_addr or self.advertise_addr

    @property
    def probe_host(self) -> str:
        return "127.0.0.1" if self.publish in ("0.0.0.0", "") else self.publish


@dataclass(frozen=True)
class Seen:
    """What one pass read, handed from step to step."""

    reading: Reading
    parsed: dict[str, Parsed]
    specs: dict[str, ServiceSpec]  # the valid ones
    secrets: Secrets
    binds: Binds
    targets: dict[str, ServiceTarget]
    containers: list[Container]  # times on the monotonic clock
    images: frozenset[str]
    healthy: Mapping[str, bool]
    crashes: Mapping[str, CrashInfo]
    wall: float  # when the pass began, for records people read
    now: float  # the same moment on the monotonic clock: every duration and deadline


class NodeReconciler:
    def __init__(
        self,
        settings: AgentSettings,
        cluster: ClusterParts,
        engine: EngineParts,
        ingress: NodeRoutes | None = None,
        clocks: Clocks = SYSTEM,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.engine = engine
        self.ingress = ingress
        self.clocks = clocks
        self.memory = Ledger(settings.stable_after, settings.restart_backoff, settings.service_backoff)
        self.intake = Intake(cluster.assignments.prefix)
        self.driver_error: str | None = None  # set while the Docker engine does not answer
        self.last_plan: NodePlan | None = None
        self.last_containers: Sequence[Container] = ()  # what the last pass listed (the usage sampler reads it)
        self.last_specs: Mapping[str, ServiceSpec] = {}  # the last pass's valid specs (the backup thread reads it)
        # containers a backup's `prepare: {stop: true}` holds stopped: not restarted meanwhile (agent/backup/)
        self.paused: Callable[[], frozenset[str]] = frozenset
        self._phase_requeue: float | None = None
        self._denials = 0  # passes in a row whose registration Consul refused (ACL): retried soon at first
        self._waiting_for_locks = False  # a stateful service waits for its volume lock: look again soon
        self._unfenced: set[str] = set()  # stateful services not started for want of a fence (one event each)
        self.answered = 0  # passes that applied their plan with Consul answering (the heartbeat reports after one)
        self.on_answered: Callable[[], None] = lambda: None  # called right after such a pass acted
        # the assignments watch's index (the daemon sets it): a pass that sees it move while it planned
        # reads again, once, before it acts
        self.assignments_version: Callable[[], int] = lambda: 0

    @property
    def authoritative(self) -> bool:
        return self.cluster.assignments.authoritative

    @property
    def kv_problem(self) -> str:
        """Why the KV is not trusted (empty when it is): the node record and ``/readyz`` show it."""
        return self.cluster.assignments.kv_problem

    def reconcile(self, *, again: bool = False) -> float | None:
        """One pass; ``again``: this pass already read the assignments once more (never a third time).
        Returns when to look again (None: only on a wake-up); raises the Consul error that hit it."""
        version = self.assignments_version()
        try:
            seen = self._read()
        except DriverError as exc:
            self.driver_error = str(exc)
            log.warning("cannot see the containers: %s", exc)
            return DRIVER_RETRY
        self.driver_error = None
        self.last_containers = tuple(seen.containers)
        self.last_specs = dict(seen.specs) if seen.reading.authoritative else {}
        current = plan(seen.targets, seen.containers, self._world(seen))
        if current.actions and not again and self.assignments_version() != version:
            # more assignments arrived while this pass read and planned (an apply of more services than
            # one transaction holds comes in parts): read once more, so they start together instead of
            # waiting until this pass has started all of the first part
            log.debug("assignments changed while planning; reading them again")
            return self.reconcile(again=True)
        self.last_plan = current
        self.memory.serving(current, seen.containers)
        if current.actions:
            log.debug("planned %d action(s)", len(current.actions))
        creates_only = all(isinstance(a, Create | Pull) for a in current.actions)
        registration = None if creates_only else self._register(current, seen)
        errors = [seen.reading.error, registration]
        build = config_builder(self.settings.node, seen.parsed, seen.secrets, seen.binds, self.settings.publish)
        result = self.engine.executor.apply(current, build)
        if seen.reading.error is None:
            self.answered += 1
            self.on_answered()  # the node may report back now, before this pass's own reports
        if creates_only:
            registration = self._register(current, seen)
            errors.append(registration)
        self._remember(current, result, seen)
        errors.append(self._report(current, seen))
        error = next((e for e in errors if e is not None), None)
        self._denials = self._denials + 1 if isinstance(registration, ConsulAccessDenied) else 0
        if error is not None and retry_denial_soon(error, errors, self._denials):
            log.info("%s; acl sync may not have widened this node's policy yet: again in %.1f s", error, DENIED_RETRY)
            self.cluster.journal.flush()
            return DENIED_RETRY
        if error is not None:
            raise error
        self.cluster.journal.flush()
        return AFTER_CHANGE if result.changed else self._next_look(current, seen.now)

    # -- 1. read -------------------------------------------------------------------------------------

    def _read(self) -> Seen:
        wall, now = self.clocks.wall(), self.clocks.mono()
        reading = self.cluster.assignments.read()
        if reading.regained:
            self.cluster.observed.forget()  # Consul is back (maybe restarted empty): re-read what it holds
        parsed = self.intake.parse(reading.assignments)
        specs = specs_of(parsed)
        secrets = self.cluster.secrets.resolve(specs) if reading.authoritative else {}
        self.memory.wait_for_secrets(secrets, now)
        binds = resolve_all(specs, self.settings.bind_mounts)
        runtime = self.engine.runtime
        listed = runtime.list_managed()
        fences = self._volume_locks(specs, {c.service for c in listed}, {c.service for c in listed if c.running})
        self._waiting_for_locks = bool(fences)
        targets = service_targets(parsed, secrets, binds, self.settings.policy, fences)
        images = frozenset(i for i in {t.image for t in targets.values()} if runtime.image_present(i))
        log.debug("read %d assignment(s), %d container(s)", len(reading.assignments), len(listed))
        containers = self.memory.times.on_mono(listed, wall, now)
        crashes = self.memory.crashes.observe(containers, now)
        healthy = self.engine.monitor.results()
        return Seen(reading, parsed, specs, secrets, binds, targets, containers, images, healthy, crashes, wall, now)

    def _volume_locks(self, specs: Mapping[str, ServiceSpec], present: set[str], running: set[str]) -> dict[str, Note]:
        """Take the locks of the stateful volumes assigned here; the services that may not run now. A
        service with no copy running starts none while no fence watches (``NoFence``, docs/stateful.md)."""
        wanted = {
            name: [(v.name, volume_name(self.settings.node, name, v.name)) for v in spec.stateful_volumes if v.name]
            for name, spec in specs.items()
            if spec.stateful_volumes
        }
        keeper = self.cluster.volume_locks
        if keeper is None:
            return {name: Note("VolumeLockUnavailable", "this agent keeps no volume locks") for name in wanted}
        fences = keeper.sync(wanted, present)
        restorer = self.cluster.restorer
        for name in wanted:
            if name not in fences and restorer is not None:
                note = restorer.gate(name, specs[name])
                if note is not None:
                    fences[name] = note
        unfenced = {}
        for name in sorted(set(wanted) - set(fences) - running):
            why = keeper.unguarded(name)
            if why is not None:
                fences[name] = unfenced[name] = Note("NoFence", why)
        for name in sorted(set(unfenced) - self._unfenced):
            log.error("not starting %s: %s", name, unfenced[name].message)
            self.cluster.journal.add("NoFence", f"service/{name}", f"not started: {unfenced[name].message}")
        self._unfenced = set(unfenced)
        return fences

    # -- 2. plan -------------------------------------------------------------------------------------

    def _world(self, seen: Seen) -> World:
        """Everything the planner may look at besides assignments and containers; all times monotonic.
        A routed container counts as promoted only once the node's Caddy sends it traffic."""
        promoted = dict(self.cluster.registrar.promoted)
        invalid = {name for name, item in seen.parsed.items() if item.spec is None}
        return World(
            now=seen.now,
            authoritative=seen.reading.authoritative,
            images=seen.images,
            healthy=seen.healthy,
            promoted=self.ingress.gate(promoted) if self.ingress else promoted,
            restart_hold=self.memory.restarts.held(seen.now) | self.paused(),
            service_hold=self.memory.services.held(seen.now),
            drain=self.settings.drain,
            served=frozenset(self.memory.served),
            protected=frozenset(seen.reading.unreadable) | frozenset(invalid),
        )

    # -- 3. register ---------------------------------------------------------------------------------

    def _register(self, current: NodePlan, seen: Seen) -> ConsulError | None:
        """Consul's replica registrations and the node Caddy's routes to the plan's ``serving`` map."""
        error = None
        if seen.reading.authoritative:
            try:
                self.cluster.registrar.follow(current.serving, seen.containers, seen.specs, seen.healthy)
            except ConsulError as exc:
                metrics.consul_errors_total.labels("agent", "registrations").inc()
                error = exc
        if self.ingress is not None:
            try:
                self.ingress.follow(seen.specs, current.serving, seen.containers, seen.healthy, self.clocks.mono())
            except Exception:  # a routing bug must not stop the containers' reconcile
                log.exception("syncing the node Caddy's routes failed")
        return error

    # -- 4. act (the executor), and what the agent learns from it ----------------------------------------

    def _remember(self, current: NodePlan, result: ApplyResult, seen: Seen) -> None:
        done, after = result.done, self.clocks.mono()
        repaired = self.memory.record(current, done, result.errors, seen.containers, seen.targets, seen.now, after)
        rolled_back = [
            ("RolledBack", f"service/{s}", current.notes.get(s, Note("")).message) for s in current.rollbacks
        ]
        pulled = pull_entries(self.engine.executor.finished_pulls())
        for kind, obj, message in [*entries(done, repaired), *rolled_back, *pulled]:
            self.cluster.journal.add(kind, obj, message)
        targets = probe_targets(seen.containers, seen.specs, self.settings.probe_host, self.settings.advertise_addr)
        self.engine.monitor.update(targets)

    # -- 5. report -----------------------------------------------------------------------------------

    def _report(self, current: NodePlan, seen: Seen) -> ConsulError | None:
        error = None
        if seen.reading.authoritative:
            try:
                self._publish(current, seen)
            except ConsulError as exc:
                metrics.consul_errors_total.labels("agent", "observed").inc()
                error = exc
            assigned = set(seen.reading.assignments) | set(seen.reading.unreadable)
            remove_released(self.engine.runtime, assigned, seen.containers)
            if self.cluster.kept_volumes is not None:
                try:
                    self.cluster.kept_volumes.follow(self.engine.runtime.list_volumes(), assigned)
                except DriverError as exc:
                    log.warning("listing volumes failed: %s", exc)
        for state in metrics.CONTAINER_STATES:
            metrics.managed_containers.labels(state).set(sum(1 for c in seen.containers if c.state == state))
        return error

    def _publish(self, current: NodePlan, seen: Seen) -> None:
        """Observed records where they changed (and of services gone with their containers); crash events."""
        registrar, node = self.cluster.registrar, self.settings.node
        assigned = {n: Assigned(p.spec, p.assignment.spec_hash) for n, p in seen.parsed.items() if p.spec is not None}
        checks = registrar.replica_checks(seen.specs)
        found = container_phases(
            node,
            assigned,
            current.serving,
            seen.containers,
            seen.healthy,
            checks,
            seen.crashes,
            seen.now,
            self.settings.stable_after,
        )
        for obj, message in found.crashed:
            self.cluster.journal.add("Crashed", obj, message)
        self._phase_requeue = found.requeue
        exit_codes = {cid: info.last_exit.code for cid, info in seen.crashes.items() if info.last_exit}
        route_errors = self.ingress.errors if self.ingress else {}
        restored = self.cluster.restorer.notes() if self.cluster.restorer else {}
        notes = (self.memory.errors, found.notes, registrar.refusals(), route_errors, current.notes, restored)
        records = node_records(
            node,
            seen.parsed,
            seen.reading.unreadable,
            seen.targets,
            seen.containers,
            seen.healthy,
            found.by_container,
            exit_codes,
            notes,
            seen.wall,
        )
        present = {c.service for c in seen.containers}
        gone = {s for s in self.cluster.observed.services if s not in records and s not in present}
        self.cluster.observed.publish(records, delete=gone)

    def _next_look(self, current: NodePlan, now: float) -> float | None:
        """How soon something changes by itself: a health wait, a drain, a phase, a hold, a renewal."""
        delays = [
            d
            for d in (
                current.requeue_after,
                self._phase_requeue,
                self.memory.next_release(now),
                self.ingress.next_retry(now) if self.ingress else None,
                PROBE_REFRESH if self.cluster.registrar.renews else None,
                LOCK_RETRY if self._waiting_for_locks else None,
            )
            if d is not None
        ]
        return max(AFTER_CHANGE, min(delays)) if delays else None
