"""The controller daemon: watches, leader election, and the reconcile pass that ties the planners together.

Five blocking-query watches (``desired/``, ``nodes/``, ``observed/``, the health of every ``meshop-agent-<node>``, and
every check in the cluster: replicas' checks and nodes' ``serfHealth``, which routes follow)
each keep their latest snapshot and notify one ``Wakeup``; a ``ReconcileLoop`` runs a pass on every
wake-up and every ``resync`` seconds. A pass reads only those snapshots plus ``Owned`` (the controller's
own keys, loaded when it becomes leader and re-read on each resync), so an idle cluster costs a constant
number of Consul requests whatever the number of services. Standbys run the same watches (hot standby)
and track node health, but write nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshop import metrics
from meshop.consul.config import ConsulConfig
from meshop.consul.events import EventLog
from meshop.consul.services import HealthView, InstanceHealth, KeptRegistration, Services, metrics_registration
from meshop.consul.sessions import Lock
from meshop.consul.store import KVStore, Listing
from meshop.consul.watch import Watch, watch_prefix
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.threads import DaemonThread
from meshop.daemon.wakeup import Wakeup
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.agents import own_entries
from meshop.model.moves import moves_of
from meshop.model.records import NodeRecord, Observed
from meshop.operator import nodes as node_health
from meshop.operator.desired import (
    GatewayHosts,
    Memo,
    ParsedNode,
    ParsedService,
    gateway_hosts,
    node_view,
    parse_node_entry,
    parse_service_entry,
    read_record,
    settled_moves,
    volume_homes,
    with_last_valid,
)
from meshop.operator.dns import DnsWriter, node_inventory
from meshop.operator.election import LeaderElection
from meshop.operator.moving import Outcome, RebalanceInput
from meshop.operator.nodes import NodeHealth
from meshop.operator.plan import ClusterState, PlannedEvent, diff, plan
from meshop.operator.rebalance import RebalanceSettings
from meshop.operator.replicas import ReplicaHealth, agent_hosts, replica_health
from meshop.operator.status import bounded
from meshop.operator.view import NodeState, NodeView
from meshop.operator.volumes import claim_volumes
from meshop.operator.writer import LeadershipLost, Owned, Writer

log = logging.getLogger(__name__)

COMPONENT = "controller"


def agent_instances(instances: Iterable[InstanceHealth]) -> list[tuple[str, InstanceHealth]]:
    """(node, instance) for every registration that speaks for its node: ``meshop-agent-N`` only (a
    name N's token alone may write), or for a node not upgraded yet the shared name (``own_entries``)."""
    return own_entries(instances)


def catalog_addresses(agents: Iterable[tuple[str, InstanceHealth]]) -> dict[str, str]:
    """node -> the address Consul's catalog holds for the Consul node its agent is registered on, when
    there is exactly one such address (two registrations that disagree prove nothing: none is used)."""
    seen: dict[str, set[str]] = {}
    for node, instance in agents:
        if instance.address:
            seen.setdefault(node, set()).add(instance.address)
    return {node: next(iter(addresses)) for node, addresses in seen.items() if len(addresses) == 1}


def _count_refused(key: str) -> None:
    """A node's record the strict reader refused: skipped as if absent (logged by ``read_record``)."""
    metrics.refused_records_total.labels(COMPONENT, key.partition("/")[0]).inc()


@dataclass(frozen=True)
class ControllerOptions:
    controller_id: str
    grace_period: float = 30.0
    resync: float = 30.0
    lock_delay: int = 1
    check_ttl: float = 3.0
    watch_wait: str = "30s"
    address: str = "127.0.0.1"  # advertised in the controller's own registration
    port: int = 0
    local_cluster: bool = False  # node addresses on loopback/link-local accepted (demo, tests)
    trust_node_records: bool = False  # a node without an inventory entry is dialled at its own claim
    rebalance: RebalanceSettings = field(default_factory=RebalanceSettings)  # policy, limits


@dataclass
class PassStats:
    """What the last pass did (for logs, tests and the benchmark)."""

    leader: bool = False
    duration: float = 0.0
    services: int = 0
    nodes: int = 0
    transactions: int = 0
    operations: int = 0


class Controller:
    def __init__(
        self,
        config: ConsulConfig,
        options: ControllerOptions,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        store_factory: Callable[[ConsulConfig], KVStore] = KVStore,
    ) -> None:
        """``clock`` (wall) stamps what records show people (since, lastTransitionTime, createdAt, event
        times); ``monotonic`` measures every duration a decision rests on (the nodes' grace period, when
        owned keys are re-read), so an NTP step moves no deadline."""
        self.config = config
        self.options = options
        self.clock = clock
        self.monotonic = monotonic
        self._new_store = store_factory
        self.store = store_factory(config)
        self.events = EventLog(self.store, COMPONENT, clock=clock)
        self.writer = Writer(self.store, self.events)
        self.owned = Owned()
        self.wakeup = Wakeup()
        self.loop = ReconcileLoop(COMPONENT, self.reconcile, self.wakeup, resync=options.resync)
        election_store = store_factory(config)
        self.election = LeaderElection(
            election_store,
            Services(config, election_store.client),
            options.controller_id,
            lock_delay=options.lock_delay,
            check_ttl=options.check_ttl,
            address=options.address,
            port=options.port,
            on_change=self._leadership_changed,
            heartbeat_services=Services(config, store_factory(config).client),
            confirm_store=store_factory(config),
        )
        dns_store = store_factory(config)
        self.dns = DnsWriter(  # the zone's one writer: acts only while this controller leads
            dns_store,
            Services(config, dns_store.client),
            lambda: self.election.lock if self.election.confirmed else None,
            local_cluster=options.local_cluster,
            trust_records=options.trust_node_records,
            resync=options.resync,
            wait=options.watch_wait,
        )
        self.watches: dict[str, Watch[Any]] = {}
        self.health: dict[str, NodeHealth] = {}
        self.last = PassStats()
        self._services = Memo[ParsedService](
            lambda e: parse_service_entry(e.key[len(keys.DESIRED_SERVICES) :], e, config.prefix)
        )
        self._node_docs = Memo[ParsedNode](lambda e: parse_node_entry(e.key[len(keys.DESIRED_NODES) :], e))
        self._records = Memo[NodeRecord | None](read_record(NodeRecord.from_dict, _count_refused))
        self._observed = Memo[Observed | None](read_record(Observed.from_dict, _count_refused))
        self._gateway = Memo[GatewayHosts](gateway_hosts)
        self._reported_node_docs: dict[str, int] = {}
        self._announce: str | None = None
        self._pending: list[PlannedEvent] = []  # node events not yet written (kept across a failed write)
        self._thread: DaemonThread | None = None
        self._node_gauges: set[str] = set()
        self._service_gauges: set[str] = set()
        self._last_move_start: float | None = None  # monotonic: the cluster-wide interval between moves
        self._move_ticks: dict[tuple[str, str, str], float] = {}  # move -> monotonic start (its timeout)
        self._gauges_mu = threading.Lock()  # a pass's service gauges vs. the clear when leadership is lost
        self.metrics_registration: KeptRegistration | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Controller:
        """Watches, election and the reconcile loop in background threads (tests, benchmarks)."""
        self.start_services()
        self._thread = self.loop.start("controller-loop")
        return self

    def start_services(self, metrics_listen: str | None = None) -> None:
        """Watches and the election; the caller runs ``self.loop`` (``meshop.daemon.run.run_daemon`` does).

        With ``metrics_listen`` the controller also registers ``meshop-metrics-controller`` for Prometheus discovery.
        """
        wait = self.options.watch_wait
        for name, prefix in (
            ("desired", keys.DESIRED),
            ("nodes", keys.NODES),
            ("observed", keys.OBSERVED),
            ("inventory", keys.INVENTORY_NODES),  # the addresses each node may claim (operator-written)
            ("locks", keys.LOCKS_VOLUMES),  # where each stateful service's data is (its volume lock's record)
            ("requests", keys.REQUESTS),  # requests/<service>/move: `meshop volume restore --to-node`
        ):
            store = self._new_store(self.config)
            self.watches[name] = watch_prefix(store, prefix, self._notifier(name), wait=wait, component=COMPONENT)
        health = Services(self.config, self._new_store(self.config).client)
        self.watches["health"] = Watch(  # every check: replicas', nodes' serfHealth, each meshop-agent-N's
            "health:any", health.health, self._notifier("health"), wait=wait, component=COMPONENT
        ).start()
        if metrics_listen:
            registration = metrics_registration(COMPONENT, self.options.controller_id, metrics_listen)
            self.metrics_registration = KeptRegistration(self.election.services, registration, COMPONENT)
            self.metrics_registration.ensure()
            self.election.port = registration.port
        self.election.start()
        self.dns.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop passes (the one in flight finishes), then release the lock and deregister."""
        self.loop.stop()
        self.dns.stop(timeout)
        for watch in self.watches.values():
            watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.election.stop()
        if self.metrics_registration is not None:
            self.metrics_registration.withdraw()
        self._clear_service_metrics()

    def ready(self) -> tuple[bool, str]:
        """For ``/readyz``: connected to Consul (leader or standby) and the last pass went well."""
        if self.election.confirmed:
            role = "leader"
        elif self.election.is_leader:
            role = "standby: leadership not confirmed"  # frozen, resumed or cut off: never claim it
        else:
            role = "standby"
        down = [name for name, watch in self.watches.items() if not watch.connected]
        if down or not self.election.connected:
            return False, f"{role}: not connected to Consul ({', '.join(down) or 'election'})"
        if self.loop.last_error:
            return False, f"{role}: last reconcile pass failed: {self.loop.last_error}"
        if self.loop.last_success is None:
            return False, f"{role}: no reconcile pass yet"
        return True, role

    def _notifier(self, name: str) -> Callable[[object], None]:
        return lambda _value: self.wakeup.notify(name)

    def _leadership_changed(self, lock: Lock | None) -> None:
        self.owned.invalidate()
        if lock is None:
            self._clear_service_metrics()  # only the leader reports services; a standby's would be stale
        self._announce = lock.session if lock is not None else None
        self.wakeup.notify("leader")
        self.dns.wakeup.notify("leader")

    # --- the pass -----------------------------------------------------------------------------------

    def reconcile(self) -> float | None:
        started = time.monotonic()
        if self.metrics_registration is not None:
            self.metrics_registration.ensure()
        if not all(watch.wait_ready(0) for watch in self.watches.values()):
            return 0.1  # never plan from a partial picture: an empty desired/ would delete everything
        now, tick = self.clock(), self.monotonic()  # wall for records, monotonic for durations
        lock = self.election.lock
        if lock is not None and (
            self.owned.loaded_at is None
            or self.owned.session != lock.session
            or tick - self.owned.loaded_at >= self.options.resync
        ):
            try:
                self.owned.load(self.store, lock.session, tick)
            except ConsulError:
                metrics.consul_errors_total.labels(COMPONENT, "read").inc()
                raise
        desired, records, node_docs, observed, agent_status, catalog, health = self._read_snapshots()
        inventory = self._inventory()
        known = set(records) | ({n for per in self.owned.assignments.values() for n in per} if lock else set())
        problems = node_health.problems_of(known, records, agent_status)
        self.health, transitions = node_health.assess(
            self.health, problems, now=tick, wall=now, grace=self.options.grace_period, indexes=self._record_indexes()
        )
        views = {
            n: node_view(
                n,
                records.get(n),
                node_docs.get(n),
                h,
                catalog_address=catalog.get(n, ""),
                allowed=inventory.get(n),
                trust_records=self.options.trust_node_records,
                local_cluster=self.options.local_cluster,
            )
            for n, h in self.health.items()
        }
        self._node_metrics(views)
        requeue = node_health.next_deadline(self.health, tick, self.options.grace_period)
        requeue = None if requeue is None else requeue + 0.05
        if lock is None:
            metrics.leader.set(0)
            self.last = PassStats(False, time.monotonic() - started, len(desired), len(views))
            return requeue

        services = {
            name: parsed.desired or with_last_valid(parsed, self.owned.assignments.get(name, {}))
            for name, parsed in claim_volumes(desired).items()
        }
        domains, dashboard_host = self._gateway_hosts()
        state = ClusterState(
            services=services,
            nodes=views,
            assignments=self.owned.assignments,
            observed=observed,
            statuses=self.owned.statuses,
            routes=self.owned.routes,
            node_statuses=self.owned.node_statuses,
            domains=domains,
            dashboard_host=dashboard_host,
            health=health,
            rebalance=self._rebalance_input(tick),
            homes=self._homes(),
            relocations=self._relocations(),
        )
        self._consume_moves()
        target = plan(state, now)
        changes = diff(state, target)
        self._pending += [PlannedEvent(t.kind, f"node/{t.node}", t.message) for t in transitions]
        self._pending += self._node_doc_events(node_docs)
        extra = list(self._pending)
        if self._announce == lock.session:
            me = f"controller/{self.options.controller_id}"
            extra.insert(0, PlannedEvent("LeaderElected", me, f"controller {self.options.controller_id} leads"))
        if extra:
            changes = replace(changes, events=tuple(extra))
        try:
            stats = self.writer.write(changes, lock.guard(), self.owned)
        except LeadershipLost as exc:
            self.owned.invalidate()
            self._pending.clear()  # the next leader reports what it sees itself
            self.election.step_down(lock, str(exc))
            return None
        except ConsulError:
            self.owned.invalidate()  # a transaction may or may not have landed: re-read before trusting
            metrics.consul_errors_total.labels(COMPONENT, "write").inc()
            raise
        self._pending.clear()
        self._moved(target.rebalance, tick)
        if target.rebalance.status.moves or target.rebalance.due:
            # is the new copy routed yet (routes/ wakes no pass)? may the next move start (rate limit)?
            requeue = 1.0 if requeue is None else min(requeue, 1.0)
        if target.rebalance.wake_in is not None:  # a returning node turns stable: nothing else wakes a pass
            wake = target.rebalance.wake_in + 0.05
            requeue = wake if requeue is None else min(requeue, wake)
        if self._announce == lock.session:
            self._announce = None
        self._service_metrics(target.statuses, lock)
        self.last = PassStats(
            True, time.monotonic() - started, len(services), len(views), stats.transactions, stats.operations
        )
        if stats.operations:
            log.info(
                "pass: %d service(s), %d node(s); wrote %d key(s) in %d transaction(s)",
                len(services),
                len(views),
                stats.operations,
                stats.transactions,
            )
        return requeue

    def _rebalance_input(self, tick: float) -> RebalanceInput:
        """Rebalancing's view: settings, the record in KV, node stability, the request, the clocks."""
        settings = self.options.rebalance
        status = self.owned.rebalance
        live = {(m.service, m.source, m.target) for m in status.moves}
        self._move_ticks = {k: v for k, v in self._move_ticks.items() if k in live}
        for key in live:
            self._move_ticks.setdefault(key, tick)  # a move this controller did not start: a full timeout
        expired = frozenset(k[0] for k, t in self._move_ticks.items() if tick - t >= settings.timeout)
        request = next(
            (e.modify_index for e in self.watches["desired"].latest.entries if e.key == keys.DESIRED_REBALANCE), 0
        )
        since = None if self._last_move_start is None else tick - self._last_move_start
        return RebalanceInput(settings, status, node_health.stable_for(self.health, tick), request, since, expired)

    def _moved(self, outcome: Outcome, tick: float) -> None:
        """After the pass's write: the rate limit's clock and the moves counter."""
        if outcome.started:
            self._last_move_start = tick
        for result, count in (("started", outcome.started), ("done", outcome.done), ("abandoned", outcome.abandoned)):
            if count:
                metrics.rebalance_moves_total.labels(result).inc(len(count))

    def _read_snapshots(
        self,
    ) -> tuple[
        dict[str, ParsedService],
        dict[str, NodeRecord],
        dict[str, ParsedNode],
        dict[str, dict[str, Observed]],
        dict[str, str],
        dict[str, str],
        ReplicaHealth,
    ]:
        desired_listing: Listing = self.watches["desired"].latest
        desired: dict[str, ParsedService] = {}
        node_docs: dict[str, ParsedNode] = {}
        for entry in desired_listing.entries:
            if entry.key.startswith(keys.DESIRED_SERVICES):
                parsed = self._services.get(entry)
                desired[parsed.name] = parsed
            elif entry.key.startswith(keys.DESIRED_NODES):
                node_docs[entry.key[len(keys.DESIRED_NODES) :]] = self._node_docs.get(entry)
        self._services.keep_only(e.key for e in desired_listing.entries)
        self._node_docs.keep_only(e.key for e in desired_listing.entries)

        records: dict[str, NodeRecord] = {}
        node_entries = self.watches["nodes"].latest.entries
        for entry in node_entries:
            record = self._records.get(entry)
            if record is not None and "/" not in entry.key[len(keys.NODES) :]:
                records[entry.key[len(keys.NODES) :]] = record
        self._records.keep_only(e.key for e in node_entries)

        observed: dict[str, dict[str, Observed]] = {}
        observed_entries = self.watches["observed"].latest.entries
        for entry in observed_entries:
            parts = keys.split(entry.key, keys.OBSERVED)
            seen = self._observed.get(entry)
            if seen is not None and len(parts) == 2:
                observed.setdefault(parts[1], {})[parts[0]] = seen
        self._observed.keep_only(e.key for e in observed_entries)

        view: HealthView = self.watches["health"].latest or HealthView([], [])
        agents = agent_instances(view.agents)
        agent_status = node_health.agent_status((node, i.status) for node, i in agents)
        health = replica_health(view.checks, agent_hosts((node, i.node) for node, i in agents))
        return desired, records, node_docs, observed, agent_status, catalog_addresses(agents), health

    def _homes(self) -> dict[str, str]:
        """Stateful service -> the node its data is on (its volume lock's record): placement's first choice."""
        watch = self.watches.get("locks")
        listing = watch.latest if watch is not None else None
        return volume_homes(listing.entries) if listing is not None else {}

    def _relocations(self) -> dict[str, str]:
        """Stateful service -> the node ``meshop volume restore --to-node`` moves it to (one-shot: that
        node's agent deletes the request once restored)."""
        watch = self.watches.get("requests")
        listing = watch.latest if watch is not None else None
        if listing is None:
            return {}
        return {s: m.node for s, m in moves_of((e.key, e.value) for e in listing.entries).items()}

    def _consume_moves(self) -> None:
        """Delete each move whose target restored the service and settled its locks (check-and-set: a
        newer request written meanwhile stays). Agents may only read moves: a holder cannot move itself."""
        requests, locks = self.watches.get("requests"), self.watches.get("locks")
        if requests is None or locks is None or requests.latest is None or locks.latest is None:
            return
        entries = {e.key: e for e in requests.latest.entries}
        moves = moves_of((e.key, e.value) for e in entries.values())
        for service in settled_moves(locks.latest.entries, {s: m.node for s, m in moves.items()}):
            entry = entries[keys.move_request(service)]
            try:
                self.store.delete(entry.key, entry.modify_index)
            except ConsulError as exc:
                log.warning("could not delete %s: %s", entry.key, exc)
                continue
            self._pending.append(
                PlannedEvent("Moved", f"service/{service}", f"restored on {moves[service].node}: move request done")
            )

    def _record_indexes(self) -> dict[str, int]:
        """node -> its ``nodes/<n>`` record's ModifyIndex: a lost node is back once it moved (nodes.py)."""
        entries = self.watches["nodes"].latest.entries
        return {e.key[len(keys.NODES) :]: e.modify_index for e in entries if "/" not in e.key[len(keys.NODES) :]}

    def _inventory(self) -> dict[str, tuple[str, ...]]:
        """node -> the addresses ``inventory/nodes/<node>`` lets it claim (a broken entry grants nothing)."""
        return node_inventory(self.watches["inventory"].latest)

    def _gateway_hosts(self) -> GatewayHosts:
        """The Gateway document's domains (route hosts outside them get ``OutsideDomains``) and its
        dashboard host (a route claiming it gets ``RouteConflict``)."""
        entry = next((e for e in self.watches["desired"].latest.entries if e.key == keys.DESIRED_GATEWAY), None)
        self._gateway.keep_only([entry.key] if entry else [])
        found = self._gateway.get(entry) if entry else None
        return found if found is not None else ((), "")

    def _node_doc_events(self, node_docs: Mapping[str, ParsedNode]) -> list[PlannedEvent]:
        """One Invalid event per invalid version of a Node document."""
        events = []
        indexes = {
            e.key[len(keys.DESIRED_NODES) :]: e.modify_index
            for e in self.watches["desired"].latest.entries
            if e.key.startswith(keys.DESIRED_NODES)
        }
        for name, parsed in sorted(node_docs.items()):
            index = indexes.get(name, 0)
            if parsed.violations and self._reported_node_docs.get(name) != index:
                errors = bounded(parsed.violations)
                events.append(PlannedEvent("Invalid", f"node/{name}", f"{errors} (node cordoned until fixed)"))
                self._reported_node_docs[name] = index
        return events

    def _node_metrics(self, views: Mapping[str, NodeView]) -> None:
        for name, view in views.items():
            metrics.node_ready.labels(name).set(0 if view.state is NodeState.NOT_READY else 1)
        for gone in self._node_gauges - set(views):
            metrics.node_ready.remove(gone)
        self._node_gauges = set(views)

    def _service_metrics(self, statuses: Mapping[str, Any], lock: Lock) -> None:
        with self._gauges_mu:
            if self.election.lock != lock:
                return  # lost while this pass ran: an ex-leader reports no services
            self._set_service_metrics(statuses)

    def _set_service_metrics(self, statuses: Mapping[str, Any]) -> None:
        counts = {"desired": len(statuses), "ready": 0, "degraded": 0, "invalid": 0}
        for name, status in statuses.items():
            ready = status.condition("Ready")
            metrics.service_ready.labels(name).set(1 if ready is not None and ready.status == "True" else 0)
            for kind, state in (("Ready", "ready"), ("Degraded", "degraded")):
                cond = status.condition(kind)
                if cond is not None and cond.status == "True":
                    counts[state] += 1
            valid = status.condition("Valid")
            if valid is not None and valid.status == "False":
                counts["invalid"] += 1
        for state, count in counts.items():
            metrics.services.labels(state).set(count)
        for gone in self._service_gauges - set(statuses):
            metrics.service_ready.remove(gone)
        self._service_gauges = set(statuses)

    def _clear_service_metrics(self) -> None:
        with self._gauges_mu:
            for name in self._service_gauges:
                with contextlib.suppress(KeyError):
                    metrics.service_ready.remove(name)
            self._service_gauges = set()
            metrics.services.clear()
