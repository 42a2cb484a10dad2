"""The node agent process: wires the reconciler to its wake-ups, heartbeat and status server.

``meshop agent run`` hands the loop to ``meshop.daemon.run.run_daemon`` (status server, signals) with
``start`` and ``shutdown`` as its hooks; tests run ``start()``, ``run()`` and ``shutdown()`` themselves.

Threads: the reconcile loop (the caller's thread, ``run()``), the assignments watch (Consul blocking
query), the Docker events follower, the TTL heartbeat, the health prober, background pulls, the usage
sampler (``sampler.py``), the volume lock renewer and watchdog (``stateful/keeper.py``) and the status
HTTP server. ``stop()`` ends the loop after its current pass; ``shutdown()`` then stops every thread
and deregisters the ``meshop-agent-<node>`` service. Containers keep running, and so do their replica
registrations (their own health checks keep them honest) — except stateful ones: no one would guard
their single writer, so they are killed and their volume locks released (docs/stateful.md). With
``DaemonOptions.caddy`` the node's Caddy is started before the first pass (when meshop runs it) and
stopped by its PID at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from meshop import __version__, metrics
from meshop.agent.backup.runner import BackupRunner
from meshop.agent.backup.worker import BackupWorker
from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.cluster.assignments import AssignmentReader
from meshop.agent.cluster.backups import BackupStore, MoveStore
from meshop.agent.cluster.journal import Journal
from meshop.agent.cluster.observed import ObservedWriter
from meshop.agent.cluster.presence import NodePresence
from meshop.agent.cluster.registrations import ReplicaRegistrar
from meshop.agent.cluster.secrets import SecretResolver
from meshop.agent.cluster.statefile import StateFile
from meshop.agent.cluster.usage import UsageWriter
from meshop.agent.cluster.volume_locks import VolumeLocks
from meshop.agent.engine.docker_driver import DockerDriver
from meshop.agent.engine.event_watcher import DockerEventsWatcher
from meshop.agent.engine.executor import WORKERS, Executor
from meshop.agent.engine.host import HostReader
from meshop.agent.engine.probes import HealthMonitor
from meshop.agent.engine.puller import Puller
from meshop.agent.engine.runtime import EngineInfo, Runtime
from meshop.agent.ingress.node_caddy import CaddyOptions, NodeCaddy
from meshop.agent.parts import ClusterParts, EngineParts
from meshop.agent.reconciler import AgentSettings, NodeReconciler
from meshop.agent.sampler import INTERVAL, UsageSampler
from meshop.agent.stateful.keeper import Killer, VolumeLockKeeper
from meshop.agent.stateful.kept import KeptVolumes
from meshop.agent.stateful.leases import DEFAULT_DIR as DEFAULT_LEASE_DIR
from meshop.agent.stateful.leases import LeaseDir
from meshop.agent.stateful.memory import SessionFile
from meshop.agent.stateful.restore import Restorer
from meshop.consul.config import ConsulConfig
from meshop.consul.kv import Listing
from meshop.consul.secrets import SecretReader
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.consul.watch import Watch, watch_prefix
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.status_server import StatusServer
from meshop.daemon.wakeup import Wakeup
from meshop.errors import DriverError
from meshop.model import keys
from meshop.model.records import Capacity, NodeRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonOptions:
    settings: AgentSettings
    consul: ConsulConfig
    docker_host: str | None = None
    state_dir: Path | None = None
    metrics_addr: str | None = "127.0.0.1:9464"
    resync: float = 30.0
    ttl: float = 10.0
    heartbeat: float = 3.0
    workers: int = WORKERS
    caddy: CaddyOptions | None = None  # the node's Caddy for routes; None: the agent routes nothing
    usage_interval: float = INTERVAL  # seconds between usage samples (docs/monitoring.md); 0: no sampling
    backups: bool = True  # run the stateful volumes' scheduled backups (docs/stateful.md, Backups)
    lease_dir: Path = DEFAULT_LEASE_DIR  # shared with `meshop fence run` (docs/stateful.md, the fence)


class AgentDaemon:
    def __init__(self, options: DaemonOptions, runtime: Runtime | None = None, *, clocks: Clocks = SYSTEM) -> None:
        self.options = options
        self.settings = options.settings
        self.node = options.settings.node
        self.clocks = clocks
        self.runtime: Runtime = runtime or DockerDriver(self.node, options.docker_host)
        self.store = KVStore(options.consul)
        self.services = Services(options.consul, self.store.client)
        self.wakeup = Wakeup()
        self.started_at = clocks.wall()  # for people: the node record's startedAt
        self.engine: EngineInfo = self.runtime.info()
        self.monitor = HealthMonitor(lambda: self.wakeup.notify("health"))
        self.puller = Puller(self.runtime, lambda: self.wakeup.notify("pull"))
        self.executor = Executor(self.runtime, self.puller, grace=self.settings.stop_grace, workers=options.workers)
        self.registrar = ReplicaRegistrar(self.services, self.node, self.settings.advertise_addr, clocks.mono)
        self.caddy = (
            NodeCaddy(options.caddy, self.settings.probe_host, self.settings.advertise_addr) if options.caddy else None
        )
        journal = Journal(self.store, self.node)
        state = StateFile(options.state_dir, self.node) if options.state_dir else None
        self.assignments = AssignmentReader(self.store, self.node, state, journal, clocks.wall)
        killer = self.runtime if isinstance(self.runtime, Killer) else None
        locks = VolumeLocks(self.store, self.node)
        self.volume_locks = (
            VolumeLockKeeper(
                self.node,
                locks,
                killer,
                mono=clocks.mono,
                wall=clocks.wall,
                on_lost=lambda service, why: self._lock_lost(journal, service, why),
                memory=SessionFile(options.state_dir, self.node) if options.state_dir else None,
                leases=LeaseDir(options.lease_dir),
            )
            if killer is not None
            else None
        )
        # one runner for the restorer and the backup worker: the containers either holds stopped are
        # the reconciler's to leave alone (``paused``), whichever thread stopped them
        self.backup_runner = (
            BackupRunner(
                self.node,
                options.consul.prefix,
                self.runtime,
                SecretReader(options.consul, self.store.client),
                clocks.wall,
                clocks.mono,
                stop_grace=self.settings.stop_grace,
            )
            if isinstance(self.runtime, DockerDriver)
            else None
        )
        restorer = None
        if self.volume_locks is not None and self.backup_runner is not None:
            restorer = Restorer(
                self.node,
                self.volume_locks,
                self.runtime,
                self.backup_runner,
                journal,
                wall=clocks.wall,
                mono=clocks.mono,
                on_done=lambda: self.wakeup.notify("restore"),
                moves=MoveStore(self.store),
            )
        cluster = ClusterParts(
            assignments=self.assignments,
            registrar=self.registrar,
            observed=ObservedWriter(self.store, self.node),
            secrets=SecretResolver(SecretReader(options.consul, self.store.client)),
            journal=journal,
            volume_locks=self.volume_locks,
            restorer=restorer,
            kept_volumes=KeptVolumes(self.node, locks, clocks.wall),
        )
        engine = EngineParts(runtime=self.runtime, executor=self.executor, monitor=self.monitor)
        ingress = self.caddy.ingress if self.caddy else None
        self.reconciler = NodeReconciler(self.settings, cluster, engine, ingress, clocks)
        if self.backup_runner is not None:
            runner = self.backup_runner
            self.reconciler.paused = lambda: runner.paused
        self.loop = ReconcileLoop("agent", self.reconciler.reconcile, self.wakeup, resync=options.resync)
        self.status: StatusServer | None = None
        self._own_status = False
        self.presence: NodePresence | None = None
        self.watch: Watch | None = None
        self.gateway_watch: Watch | None = None  # desired/gateway, with --ingress-https-port only
        self.claims_watch: Watch | None = None  # gateways/: whose X-Forwarded-* the node Caddy trusts
        self.sampler = (
            UsageSampler(
                self.node,
                self.runtime,
                lambda: self.reconciler.last_containers,
                HostReader(disk=str(options.state_dir) if options.state_dir else "/"),
                UsageWriter(self.store, self.node),
                clocks=clocks,
                interval=options.usage_interval,
            )
            if options.usage_interval > 0
            else None
        )
        self.backups = self._backup_worker(options, clocks)
        self.events = DockerEventsWatcher(self.runtime, self.wakeup, on_die=self.reconciler.memory.crashes.died)

    def _lock_lost(self, journal: Journal, service: str, why: str) -> None:
        """The keeper killed a copy (from its own thread): an event, and a pass to remove the container."""
        journal.add("VolumeLockLost", f"service/{service}", f"{why}; its container was killed")
        self.wakeup.notify("volume-lock")

    def _backup_worker(self, options: DaemonOptions, clocks: Clocks) -> BackupWorker | None:
        """The backup thread, when asked for and the engine can reach volumes' folders (Docker)."""
        if not options.backups or self.backup_runner is None:
            return None
        reconciler, locks = self.reconciler, self.volume_locks
        return BackupWorker(
            self.node,
            self.backup_runner,
            lambda: (reconciler.last_specs, reconciler.last_containers),
            BackupStore(self.store, self.node),
            may_write=locks.may_run if locks is not None else lambda _service: False,  # the volume's writer only
            clocks=clocks,
        )

    def record(self) -> NodeRecord:
        return NodeRecord(
            name=self.node,
            address=self.settings.advertise_addr,
            labels=dict(self.settings.labels),
            capacity=Capacity(cpus=self.engine.cpus, memory=self.engine.memory),
            version=__version__,
            started_at=self.started_at,
            metrics_addr=self.status.address if self.status else "",
            ingress_port=self.options.caddy.ingress_port if self.options.caddy else 0,
            problem=self.reconciler.kv_problem,
            caddy=self.caddy.ingress.load.state if self.caddy else None,  # a refused load shows in status
        )

    def ready(self) -> tuple[bool, str]:
        """For ``/readyz``: Consul answers (the watch notices a lost connection at once, the heartbeat
        within a few beats), a pass has run, the last one succeeded and Docker answers."""
        if self.watch is not None and not self.watch.connected:
            return False, "not connected to Consul (assignments watch)"
        age = self.presence.contact_age() if self.presence else None
        if age is None or age > max(10.0, 3 * self.options.heartbeat):
            return False, "Consul has not answered recently"
        if self.loop.passes == 0:
            return False, "no reconcile pass yet"
        if self.loop.last_error:
            return False, f"last reconcile pass failed: {self.loop.last_error}"
        if self.reconciler.kv_problem:
            return False, self.reconciler.kv_problem
        if self.reconciler.driver_error:
            return False, f"Docker engine: {self.reconciler.driver_error}"
        return True, "ready"

    def start(self, status: StatusServer | None = None) -> AgentDaemon:
        """Start every thread; ``status`` is a running status server to use (``run_daemon`` makes one)."""
        metrics.init_component("agent")
        self._own_status = status is None
        if status is not None:
            self.status = status
        elif self.options.metrics_addr:
            self.status = StatusServer(self.options.metrics_addr, self.ready).start()
            log.info("metrics and health on http://%s", self.status.address)
        if self.caddy is not None:
            self.caddy.start()  # before the first pass, which loads the routes into it
        if self.volume_locks is not None:
            self.volume_locks.start()  # its watchdog kills any stateful copy left running without a lock
        self.monitor.start()
        presence = NodePresence(
            self.store,
            self.services,
            self.record,
            port=self.status.port if self.status else 0,
            metrics_listen=self.status.address if self.status else None,
            ttl=self.options.ttl,
            interval=self.options.heartbeat,
            passes=lambda: self.reconciler.answered,
            wake=lambda: self.wakeup.notify("report"),
        ).start()
        self.presence = presence
        self.reconciler.on_answered = lambda: None if presence.reported else presence.poke()
        self.watch = watch_prefix(
            self.store,
            keys.node_assignments(self.node),
            lambda _listing: self.wakeup.notify("assignments"),
            component="agent",
        )
        watch = self.watch
        self.reconciler.assignments_version = lambda: watch.index
        if self.caddy is not None and self.caddy.options.https_port is not None:
            self.gateway_watch = watch_prefix(
                self.store, keys.DESIRED_GATEWAY, self._gateway_changed, component="agent"
            )
        if self.caddy is not None and self.caddy.follows_gateways:
            self.claims_watch = watch_prefix(self.store, keys.GATEWAYS, self._claims_changed, component="agent")
        self.events.start()
        if self.sampler is not None:
            self.sampler.start()
        if self.backups is not None:
            self.backups.start()
        log.info(
            "agent for node %s started (advertise %s, publish %s, resync %gs)",
            self.node,
            self.settings.advertise_addr,
            self.settings.publish,
            self.options.resync,
        )
        return self

    def _gateway_changed(self, listing: Listing) -> None:
        """The Gateway document changed: a new TLS mode or domains for the node's HTTPS sites."""
        if self.caddy is not None and self.caddy.follow_gateway(listing):
            self.wakeup.notify("gateway")

    def _claims_changed(self, listing: Listing) -> None:
        """A gateway claimed or dropped an address: the node Caddy trusts forwarded headers from it."""
        if self.caddy is not None and self.caddy.follow_gateways(listing):
            self.wakeup.notify("gateways")

    def run(self) -> None:
        """Reconcile until ``stop()``; blocks the calling thread."""
        self.loop.run_forever()

    def stop(self) -> None:
        """Ask the loop to end after its current pass (safe from a signal handler)."""
        self.loop.stop()

    def shutdown(self) -> None:
        self.loop.stop()
        if self.watch:
            self.watch.stop()
        if self.gateway_watch:
            self.gateway_watch.stop()
        if self.claims_watch:
            self.claims_watch.stop()
        self.events.stop()
        if self.volume_locks is not None:
            self.volume_locks.stop()  # kills the stateful copies, releases their locks
        if self.sampler is not None:
            self.sampler.stop()
        if self.backups is not None:
            self.backups.stop()
        self.monitor.stop()
        self.puller.stop()
        self.executor.stop()
        if self.caddy is not None:
            self.caddy.stop()
        if self.presence:
            self.presence.stop(deregister=True)
        if self.status and self._own_status:
            self.status.stop()
        close = getattr(self.runtime, "close", None)
        if close is not None:
            with contextlib.suppress(DriverError):
                close()
        log.info("agent for node %s stopped; its containers keep running (but stateful ones)", self.node)
