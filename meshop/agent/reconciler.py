"""One reconcile pass of the node agent: read everything, plan, register, act, report.

1. Read this node's assignments from Consul, then its fence (``fence.py``): when both answer and the
   KV is the one the agent talked to, the pass is authoritative. Otherwise (Consul unreachable, or
   emptied / rolled back) it falls back to the last good assignments (memory, then the state file):
   then nothing is deleted, only repaired.
2. Parse and check each assignment (schema rules, this agent's policy), resolve its secrets.
3. List this node's managed containers; take the health monitor's latest probe results.
4. ``plan()``; sync Consul registrations to the plan's ``serving`` map (deregister before removing);
   execute the actions; write observed state where it changed; clean up volumes of removed services.

A failure to reach Consul fails the pass at its end (after the containers were seen to), so the loop
retries soon and ``/readyz`` reports it. Per-service failures only hold that service in backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from meshop import metrics
from meshop.agent.cluster.fence import FenceKeeper, Untrusted
from meshop.agent.cluster.journal import Journal, entries
from meshop.agent.cluster.observed import ObservedWriter
from meshop.agent.cluster.registrations import (
    PROBE_REFRESH,
    ReplicaRegistrar,
    host_port,
    probe_check_id,
    replica_registration,
    replica_service_id,
)
from meshop.agent.cluster.statefile import StateFile
from meshop.agent.engine.executor import ApplyResult, Executor
from meshop.agent.engine.hostpaths import resolve_binds
from meshop.agent.engine.probes import HealthMonitor, ProbeTarget
from meshop.agent.engine.runtime import ContainerConfig, Runtime
from meshop.agent.ingress.sync import NodeIngress
from meshop.agent.memory.crashes import CrashInfo, CrashTracker
from meshop.agent.memory.holds import Holds
from meshop.agent.planning import labels as L
from meshop.agent.planning.desired import check_assignment, container_config, desired_service, primary_port, secret_keys
from meshop.agent.planning.phases import Assigned, container_phases
from meshop.agent.planning.plan import (
    Container,
    Create,
    NodePlan,
    Note,
    Pull,
    Replace,
    ServiceTarget,
    Start,
    World,
    action_service,
)
from meshop.agent.planning.planner import plan
from meshop.agent.planning.redact import env_problem
from meshop.agent.planning.report import observed_record
from meshop.consul.secrets import SecretReader
from meshop.consul.services import Registration
from meshop.consul.store import KVStore
from meshop.errors import ConsulError, DriverError, SecretRefused
from meshop.model import Policy, ServiceSpec, keys
from meshop.model.records import Assignment, Observed, loads_json

log = logging.getLogger(__name__)

AFTER_CHANGE = 0.05  # look again this soon after a pass that changed something
DRIVER_RETRY = 2.0  # look again this soon when the Docker engine did not answer


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


@dataclass
class _Parsed:
    assignment: Assignment
    spec: ServiceSpec | None
    note: Note | None  # InvalidAssignment


class NodeReconciler:
    def __init__(
        self,
        settings: AgentSettings,
        store: KVStore,
        runtime: Runtime,
        executor: Executor,
        registrar: ReplicaRegistrar,
        monitor: HealthMonitor,
        observed: ObservedWriter,
        secrets: SecretReader,
        state: StateFile | None = None,
        clock: Callable[[], float] = time.time,
        ingress: NodeIngress | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self.executor = executor
        self.registrar = registrar
        self.monitor = monitor
        self.observed = observed
        self.secrets = secrets
        self.state = state
        self.clock = clock
        self.ingress = ingress
        self.node = settings.node
        self.cached: dict[str, Assignment] | None = state.load() if state else None
        self.fence = FenceKeeper(store, self.node, state, clock)
        self.authoritative = False
        self.kv_problem = ""  # set while the KV is not the one this agent talked to (see fence.py)
        self.crashes = CrashTracker(settings.stable_after)
        self.journal = Journal(store, self.node)
        self._phase_requeue: float | None = None
        self.driver_error: str | None = None  # set while the Docker engine does not answer
        self.last_plan: NodePlan | None = None
        self.services = Holds(*settings.service_backoff)
        self.restarts = Holds(*settings.restart_backoff)
        self._errors: dict[str, Note] = {}
        self._seen: set[tuple[str, int]] = set()
        self._parse_cache: dict[str, tuple[ServiceSpec | None, Note | None]] = {}
        self._binds: dict[str, dict[str, str]] = {}  # service -> allowed hostPath -> resolved path, this pass
        self._probe_ttls = False  # some replica's HTTP verdict lives in a TTL check: renew it in time
        # the assignments watch's index (the daemon sets it): a pass that sees it move while it planned
        # reads again, once, before it acts
        self.assignments_version: Callable[[], int] = lambda: 0
        if self.cached is not None:
            log.info("loaded %d assignment(s) from %s", len(self.cached), state.path if state else "")

    # -- the pass ------------------------------------------------------------------------------------

    def reconcile(self, *, again: bool = False) -> float | None:
        """One pass; ``again``: this pass already read the assignments once more (never a third time)."""
        now = self.clock()
        version = self.assignments_version()
        consul_error: ConsulError | None = None
        try:
            assignments, unreadable = self._read_assignments()
            if not self.authoritative:
                self.observed.forget()  # Consul is back (maybe restarted empty): re-read what it holds
            self.authoritative = True
            self._kv_problem("")
        except ConsulError as exc:
            metrics.consul_errors_total.labels("agent", "assignments").inc()
            consul_error = exc
            assignments, unreadable = dict(self.cached or {}), {}
            self.authoritative = False
        except Untrusted as exc:
            assignments, unreadable = dict(self.cached or {}), {}
            self.authoritative = False
            self._kv_problem(str(exc))
        parsed = {name: self._parse(a) for name, a in assignments.items()}
        secrets = self._resolve_secrets(parsed) if self.authoritative else {}
        self._retry_unavailable_secrets(secrets, now)
        desired = self._desired(parsed, secrets)
        try:
            containers = self.runtime.list_managed()
            images = frozenset(i for i in {d.image for d in desired.values()} if self.runtime.image_present(i))
        except DriverError as exc:
            self.driver_error = str(exc)
            log.warning("cannot see the containers: %s", exc)
            return DRIVER_RETRY
        self.driver_error = None
        log.debug("read %d assignment(s), %d container(s)", len(assignments), len(containers))
        crash_infos = self.crashes.observe(containers, now)
        healthy = self.monitor.results()
        world = World(
            now=now,
            authoritative=self.authoritative,
            images=images,
            healthy=healthy,
            promoted=self._promoted(),
            restart_hold=self.restarts.held(now),
            service_hold=self.services.held(now),
            drain=self.settings.drain,
            protected=frozenset(unreadable) | frozenset(n for n, p in parsed.items() if p.spec is None),
        )
        current = plan(desired, containers, world)
        if current.actions and not again and self.assignments_version() != version:
            # more assignments arrived while this pass read and planned (an apply of more services than
            # one transaction holds comes in parts): read once more, so they start together instead of
            # waiting until this pass has started all of the first part
            log.debug("assignments changed while planning; reading them again")
            return self.reconcile(again=True)
        self.last_plan = current
        # Consul's registrations and the node Caddy's routes stop pointing at a container before an action
        # removes or restarts it. A plan that only creates (a new service, a surge) changes nothing that
        # is served: it starts its containers first and syncs after, a Consul round trip off the way there
        creates_only = all(isinstance(a, Create | Pull) for a in current.actions)
        serving_error = None if creates_only else self._sync_serving(current, containers, parsed, healthy)
        if current.actions:
            log.debug("planned %d action(s)", len(current.actions))
        result = self.executor.apply(current, self._builder(parsed, secrets))
        if creates_only:
            serving_error = self._sync_serving(current, containers, parsed, healthy)
        consul_error = consul_error or serving_error
        self._account(current, result, containers, desired, now)
        self._update_probes(containers, parsed)
        if self.authoritative:
            try:
                self._publish(parsed, unreadable, desired, current, containers, healthy, now, crash_infos)
            except ConsulError as exc:
                metrics.consul_errors_total.labels("agent", "observed").inc()
                consul_error = consul_error or exc
            self._cleanup_volumes(set(assignments) | set(unreadable), containers)
        for state in metrics.CONTAINER_STATES:
            metrics.managed_containers.labels(state).set(sum(1 for c in containers if c.state == state))
        if consul_error is None:
            self.journal.flush()
        if consul_error is not None:
            raise consul_error
        if result.changed:
            return AFTER_CHANGE
        delays = [
            d
            for d in (
                current.requeue_after,
                self._phase_requeue,
                self.services.next_release(now),
                self.restarts.next_release(now),
                self.ingress.next_retry(now) if self.ingress else None,
                PROBE_REFRESH if self._probe_ttls else None,
            )
            if d is not None
        ]
        return max(AFTER_CHANGE, min(delays)) if delays else None

    # -- reading -------------------------------------------------------------------------------------

    def _read_assignments(self) -> tuple[dict[str, Assignment], dict[str, Note]]:
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

    def _parse(self, assignment: Assignment) -> _Parsed:
        key = f"{assignment.service}\0{assignment.spec_hash}\0{sorted(assignment.spec.items())!r}"
        cached = self._parse_cache.get(key)
        if cached is None:
            cached = check_assignment(assignment, self.store.config.prefix)
            self._parse_cache[key] = cached
            if len(self._parse_cache) > 4096:
                self._parse_cache.clear()
        return _Parsed(assignment, *cached)

    def _resolve_secrets(self, parsed: Mapping[str, _Parsed]) -> dict[str, dict[str, str] | Note]:
        resolved: dict[str, dict[str, str] | Note] = {}
        for name, item in parsed.items():
            if item.spec is None or not secret_keys(item.spec):
                continue
            values: dict[str, str] = {}
            try:
                for env_name, key in secret_keys(item.spec).items():
                    value = self.secrets.get(name, key)
                    if value is None:
                        raise LookupError(f"Consul key {key} (env {env_name}) does not exist")
                    if (problem := env_problem(value)) is not None:
                        raise SecretRefused(f"the value of Consul key {key} (env {env_name}) {problem}")
                    values[env_name] = value
            except SecretRefused as exc:  # the key is not this service's, or no env can hold the value
                log.warning("%s: %s", name, exc)
                resolved[name] = Note("SecretRefused", str(exc)[:300])
                continue
            except (ConsulError, LookupError) as exc:
                if isinstance(exc, ConsulError):
                    metrics.consul_errors_total.labels("agent", "secrets").inc()
                resolved[name] = Note("SecretUnavailable", str(exc)[:300])
                continue
            resolved[name] = values
        return resolved

    def _retry_unavailable_secrets(self, secrets: Mapping[str, dict[str, str] | Note], now: float) -> None:
        """Come back for a secret that could not be read (not written yet, or ``acl sync`` has not yet
        granted this node the service's folder): nothing else wakes the agent when it appears, so
        without this the service would wait for the next resync."""
        held = self.services.held(now)
        for name, value in secrets.items():
            if isinstance(value, Note) and value.reason == "SecretUnavailable" and name not in held:
                self.services.failed(name, now)

    def _desired(
        self, parsed: Mapping[str, _Parsed], secrets: Mapping[str, dict[str, str] | Note]
    ) -> dict[str, ServiceTarget]:
        desired: dict[str, ServiceTarget] = {}
        self._binds = {}
        for name, item in parsed.items():
            if item.spec is None:
                continue
            values = secrets.get(name)
            hold = values if isinstance(values, Note) else None
            binds, refusal = resolve_binds(item.spec, self.settings.bind_mounts)
            self._binds[name] = binds
            if refusal is not None and hold is None:
                hold = Note("PolicyRefused", refusal)
            known = values if isinstance(values, dict) else ({} if not secret_keys(item.spec) else None)
            desired[name] = desired_service(item.assignment, item.spec, self.settings.policy, known, hold)
        return desired

    def _builder(
        self, parsed: Mapping[str, _Parsed], secrets: Mapping[str, dict[str, str] | Note]
    ) -> Callable[[str, int, str], ContainerConfig]:
        def build(service: str, replica: int, config_hash: str) -> ContainerConfig:
            item = parsed[service]
            assert item.spec is not None
            values = secrets.get(service)
            return container_config(
                self.node,
                item.assignment,
                item.spec,
                replica,
                config_hash,
                values if isinstance(values, dict) else {},
                self.settings.publish,
                self._binds.get(service),
            )

        return build

    # -- node Caddy ----------------------------------------------------------------------------------

    def _promoted(self) -> dict[str, float]:
        """When each serving container took over; a routed one only once the node's Caddy sends it traffic."""
        promoted = dict(self.registrar.promoted)
        return self.ingress.gate(promoted) if self.ingress else promoted

    def _sync_serving(
        self, current: NodePlan, containers: list[Container], parsed: Mapping[str, _Parsed], healthy: Mapping[str, bool]
    ) -> ConsulError | None:
        """Consul's replica registrations and the node Caddy's routes to the plan's ``serving`` map."""
        error = None
        if self.authoritative:
            try:
                self._sync_registrations(current, containers, parsed, healthy)
            except ConsulError as exc:
                metrics.consul_errors_total.labels("agent", "registrations").inc()
                error = exc
        self._sync_ingress(current, containers, parsed, healthy)
        return error

    def _sync_ingress(
        self, current: NodePlan, containers: list[Container], parsed: Mapping[str, _Parsed], healthy: Mapping[str, bool]
    ) -> None:
        """Point the node Caddy's routes at the containers the plan serves, before any action removes one."""
        if self.ingress is None:
            return
        specs = {name: item.spec for name, item in parsed.items() if item.spec is not None}
        try:
            self.ingress.follow(specs, current.serving, containers, healthy, self.clock())
        except Exception:  # a routing bug must not stop the containers' reconcile
            log.exception("syncing the node Caddy's routes failed")

    # -- Consul side ---------------------------------------------------------------------------------

    def _sync_registrations(
        self, current: NodePlan, containers: list[Container], parsed: Mapping[str, _Parsed], healthy: Mapping[str, bool]
    ) -> None:
        by_id = {c.id: c for c in containers}
        wanted: dict[str, tuple[Registration, str]] = {}
        for (service, replica), container_id in current.serving.items():
            spec = parsed[service].spec
            assert spec is not None
            container = by_id[container_id]
            reg = replica_registration(
                self.node,
                self.settings.advertise_addr,
                service,
                replica,
                container,
                spec,
                primary_port(spec),
                healthy.get(container_id) if spec.health else True,
            )
            wanted[replica_service_id(self.node, service, replica)] = (reg, container_id)
        self.registrar.sync(wanted)
        verdicts = {
            probe_check_id(sid): healthy.get(container_id) is True
            for sid, (reg, container_id) in wanted.items()
            if any(check.ttl for check in reg.checks)
        }
        self.registrar.report(verdicts)
        self._probe_ttls = bool(verdicts)

    def _publish(
        self,
        parsed: Mapping[str, _Parsed],
        unreadable: Mapping[str, Note],
        desired: Mapping[str, ServiceTarget],
        current: NodePlan,
        containers: list[Container],
        healthy: Mapping[str, bool],
        now: float,
        crash_infos: Mapping[str, CrashInfo],
    ) -> None:
        by_service: dict[str, list[Container]] = {}
        for container in containers:
            by_service.setdefault(container.service, []).append(container)
        checks = self._consul_checks(parsed)
        assigned = {n: Assigned(p.spec, p.assignment.spec_hash) for n, p in parsed.items() if p.spec is not None}
        stable = self.settings.stable_after
        found = container_phases(
            self.node, assigned, current.serving, containers, healthy, checks, crash_infos, now, stable
        )
        for obj, message in found.crashed:
            self.journal.add("Crashed", obj, message)
        self._phase_requeue = found.requeue
        phases, crash_notes = found.by_container, found.notes
        exit_codes = {cid: info.last_exit.code for cid, info in crash_infos.items() if info.last_exit}
        records: dict[str, Observed] = {}
        for name in sorted(set(parsed) | set(unreadable)):
            item = parsed.get(name)
            svc = desired.get(name)
            note = (
                unreadable.get(name)
                or (item.note if item else None)
                or (svc.hold if svc else None)
                or self._errors.get(name)
                or crash_notes.get(name)
                or self._refused_note(name)
                or (self.ingress.errors.get(name) if self.ingress else None)
                or current.notes.get(name)
            )
            records[name] = observed_record(
                node=self.node,
                service=name,
                spec_hash=item.assignment.spec_hash if item else "",
                generation=item.assignment.generation if item else 0,
                replicas=item.assignment.replicas if item else 0,
                containers=by_service.get(name, []),
                has_health=bool(item and item.spec and item.spec.health),
                healthy=healthy,
                note=note,
                now=now,
                phases=phases,
                exit_codes=exit_codes,
            )
        gone = {s for s in self.observed.services if s not in records and s not in by_service}
        self.observed.publish(records, delete=gone)

    def _refused_note(self, service: str) -> Note | None:
        """Why the service's replicas are not in Consul: the name belongs to something else."""
        why = self.registrar.refused.get(service)
        return Note("ServiceNameTaken", why) if why else None

    def _consul_checks(self, parsed: Mapping[str, _Parsed]) -> dict[str, str]:
        """The worst check status of each local replica registration, only when some assigned service
        has a health check (its replicas are Ready only once every check passes in Consul)."""
        if not any(item.spec is not None and item.spec.health is not None for item in parsed.values()):
            return {}
        return self.registrar.services.local_service_health()

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _account(
        self,
        current: NodePlan,
        result: ApplyResult,
        containers: list[Container],
        desired: Mapping[str, ServiceTarget],
        now: float,
    ) -> None:
        for service, note in result.errors.items():
            self._errors[service] = note
            delay = self.services.failed(service, self.clock())  # from now: the actions took time
            log.info("%s: %s; retrying in %.1fs", service, note.reason, delay)
        acted = {action_service(a) for a in result.done if not isinstance(a, Pull)}  # a pull merely started
        for service in acted - set(result.errors):
            self._errors.pop(service, None)
            self.services.succeeded(service)
        for service in current.rollbacks:
            # the update failed after waiting healthTimeout: do not retry it sooner than that
            self._errors[service] = current.notes.get(service, Note("UpdateFailed"))
            minimum = desired[service].health_timeout if service in desired else 0.0
            self.services.failed(service, self.clock(), minimum=minimum)
        held = self.services.held(now)
        for service in list(self._errors):
            if service not in desired or (
                service not in held and not current.for_service(service) and service not in current.notes
            ):
                self._errors.pop(service, None)
                self.services.succeeded(service)
        repaired = {
            (a.service, a.replica)
            for a in result.done
            if isinstance(a, Create) and a.reason == "missing" and (a.service, a.replica) in self._seen
        }
        for kind, obj, message in entries(result.done, repaired):
            self.journal.add(kind, obj, message)
        for service in current.rollbacks:
            self.journal.add("RolledBack", f"service/{service}", current.notes.get(service, Note("")).message)
        for image, waiting, failure in self.executor.puller.take_finished():
            for service in waiting:
                if failure:
                    self.journal.add("PullFailed", f"service/{service}", failure)
                else:
                    self.journal.add("Pulled", f"service/{service}", f"image {image} pulled")
        for action in result.done:
            if isinstance(action, Start):
                self.restarts.failed(action.container.id, now)
                self.crashes.started(action.container.id)
                metrics.drift_repairs_total.labels("stopped").inc()
            elif isinstance(action, Replace) and action.reason in ("created-leftover", "dead"):
                metrics.drift_repairs_total.labels(action.reason).inc()
            elif (
                isinstance(action, Create)
                and action.reason == "missing"
                and (action.service, action.replica) in self._seen
            ):
                metrics.drift_repairs_total.labels("missing").inc()
        for container in containers:
            if container.running and container.started_at and now - container.started_at >= self.settings.stable_after:
                self.restarts.succeeded(container.id)
        self.restarts.forget_except({c.id for c in containers})
        self.services.forget_except(set(desired))
        self._seen = {(c.service, c.replica) for c in containers if c.service in desired} | {
            (a.service, a.replica) for a in result.done if isinstance(a, Create | Replace)
        }

    def _update_probes(self, containers: list[Container], parsed: Mapping[str, _Parsed]) -> None:
        targets: dict[str, ProbeTarget] = {}
        for container in containers:
            item = parsed.get(container.service)
            spec = item.spec if item else None
            if spec is None or spec.health is None or not container.running:
                continue
            port = host_port(container, spec.health.port, "tcp", spec)
            if not port:
                continue
            host = self.settings.advertise_addr if spec.network_mode == "host" else self.settings.probe_host
            targets[container.id] = ProbeTarget(
                spec.health.kind,
                host,
                port,
                spec.health.path or "/",
                spec.health.interval,
                spec.health.timeout,
            )
        self.monitor.update(targets)

    def _cleanup_volumes(self, assigned: set[str], containers: list[Container]) -> None:
        """Remove volumes marked deleteWithService once their service is unassigned and its containers gone."""
        in_use = {c.service for c in containers}
        try:
            volumes = self.runtime.list_volumes()
        except DriverError as exc:
            log.warning("listing volumes failed: %s", exc)
            return
        for volume in volumes:
            service = volume.labels.get(L.SERVICE, "")
            if volume.labels.get(L.DELETE_WITH_SERVICE) != "true" or service in assigned or service in in_use:
                continue
            try:
                if self.runtime.remove_volume(volume.name):
                    log.info("removed volume %s of removed service %s", volume.name, service)
            except DriverError as exc:
                log.warning("removing volume %s failed: %s", volume.name, exc)
