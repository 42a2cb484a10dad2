"""``meshop gateway run``: keep the gateway's Caddy equal to Consul's routes, following node health.

Inputs, each a blocking-query watch feeding one ``Wakeup``: ``routes/`` (written by the controller),
``desired/gateway`` (domains, TLS), and the agents' health checks (``meshop-agent-<node>``) — so a node whose agent
stops answering leaves every upstream pool at once, without waiting for the controller to reschedule.
A config Caddy refuses leaves the previous one serving; the error is logged, counted, retried, and
recorded in ``gateways/<id>/caddy`` (``loadreport``) for ``meshop status`` and the dashboard.
Upstreams reach Caddy through the gateway's own DNS responder (``upstream_dns``, ``dynamic srv``), so a
change of upstreams alone needs no reload; only a change of the sites does (``dynamic_sites``).
Upstream hostnames are resolved by the gateway (``resolve``) and served as checked IP addresses.
The Gateway document's ``spec.dashboard`` host is served (with TLS) only once the dashboard behind it
has shown it requires a login (``gateway.dashboard``); no route may take that host.
With its status listener's address the gateway registers ``meshop-metrics-gateway`` (Prometheus discovery)
and deregisters it on a clean stop, like the controller and the agents.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from meshop.caddy.admin import CaddyRejected
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.consul.client import make_client
from meshop.consul.config import ConsulConfig
from meshop.consul.services import CheckState, KeptRegistration, Services, metrics_registration
from meshop.consul.store import KVStore, Listing
from meshop.consul.watch import Watch, watch_checks, watch_prefix
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.wakeup import Wakeup
from meshop.errors import MeshopError
from meshop.gateway.config import (
    GatewaySettings,
    Pinned,
    dynamic_sites,
    emptying_wait,
    hostnames,
    plan_sites,
    render_gateway,
)
from meshop.gateway.dashboard import DashboardCheck, PublicationReport, dashboard_site
from meshop.gateway.loadreport import LoadReport
from meshop.gateway.presence import Presence
from meshop.gateway.probes import Prober
from meshop.gateway.resolve import NameResolver
from meshop.model import keys, parse_stored_gateway
from meshop.model.agents import own_entries
from meshop.model.names import is_dns_label
from meshop.model.records import RouteRecord, loads_json

log = logging.getLogger(__name__)
COMPONENT = "gateway"
CLAIM_RETRY = 2.0  # seconds to the next pass while the claim is not held


def down_nodes(checks: list[CheckState] | None) -> set[str]:
    """Nodes whose agent check is failing, among every check in the cluster: only a check of
    ``meshop-agent-N`` speaks for N (a name N's token alone may write; the shared name of older agents
    only for a node that has none: ``meshop.model.agents.own_entries``). A node without a check (its agent
    stopped cleanly and deregistered, or never ran) is not down: its containers keep serving without an
    agent."""
    return {node for node, check in own_entries(checks or ()) if check.status != "passing"}


def parse_routes(listing: Listing | None) -> list[RouteRecord]:
    routes = []
    for entry in listing.entries if listing else ():
        try:
            routes.append(RouteRecord.from_dict(loads_json(entry.value)))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable route %s: %s", entry.key, exc)
    return routes


class GatewayDaemon:
    def __init__(
        self,
        config: ConsulConfig,
        settings: GatewaySettings,
        applier: ConfigApplier,
        resync: float = 30.0,
        dns: UpstreamDNS | None = None,
        resolver: NameResolver | None = None,
        gateway_id: str | None = None,
    ):
        if dns is not None:
            settings = replace(settings, upstream_dns=dns.address)
        self.dns = dns
        self.config = config
        self.base_settings = settings
        self.settings = settings
        self.applier = applier
        self.store = KVStore(config)
        self.services = Services(config, make_client(config))
        self.wakeup = Wakeup()
        # gateways/<id>/caddy: only for an id the ACL rules and readers accept (an RFC 1123 label)
        reporting = bool(gateway_id) and is_dns_label(gateway_id)
        self.load_report = LoadReport(self.store, gateway_id) if gateway_id and reporting else None
        self.dashboard_report = PublicationReport(self.store, gateway_id) if gateway_id and reporting else None
        self.dashboard_check = DashboardCheck(lambda: self.wakeup.notify("dashboard"))
        self.loop = ReconcileLoop(COMPONENT, self.reconcile, self.wakeup, resync=resync)
        self.watches: list[Watch] = []
        self.last_error: str | None = None
        self._gateway_doc_index = -1
        self._fail_open: tuple[str, ...] = ()
        self._served_sites = 0  # sites in the config Caddy last accepted
        self._pinned: Pinned = {}  # host -> static upstreams in the config Caddy last accepted
        self._emptied_since: float | None = None  # when a plan serving nothing was first the answer
        self.metrics_registration: KeptRegistration | None = None
        self.presence: Presence | None = None  # meshop-gateway, with --advertise-addr (DNS follows it)
        self.prober = Prober(lambda: self.wakeup.notify("probe")) if dns is not None else None
        # upstream hostnames are resolved here and served as checked IPs: Caddy never dials a name
        self.resolver = resolver or NameResolver(lambda: self.wakeup.notify("resolve"))

    def start_watches(self, metrics_listen: str | None = None, instance: str = "") -> None:
        """Start the watches; with ``metrics_listen`` (the bound status address) also register
        ``meshop-metrics-gateway``. A failed registration is logged, not fatal: routing matters more."""
        if self.dns is not None:
            self.dns.start()
            log.info("upstream DNS for Caddy on %s", self.dns.address)
        if self.prober is not None:
            self.prober.start()
        self.resolver.start()
        self.dashboard_check.start()
        notify = self.wakeup.notify
        self.routes_watch = watch_prefix(self.store, keys.ROUTES, lambda _: notify("routes"), component=COMPONENT)
        self.gateway_watch = watch_prefix(
            self.store, keys.DESIRED_GATEWAY, lambda _: notify("gateway"), component=COMPONENT
        )
        self._down: set[str] | None = None
        self.checks_watch = watch_checks(self.services, self._health_changed, component=COMPONENT)
        self.watches = [self.routes_watch, self.gateway_watch, self.checks_watch]
        if self.presence is not None:  # its claim released (the machine's session invalidated): take it again
            claim = keys.gateway_claim(self.presence.gateway_id)
            self.watches.append(watch_prefix(self.store, claim, lambda _: notify("claim"), component=COMPONENT))
        if metrics_listen:
            registration = metrics_registration(COMPONENT, instance or "gateway", metrics_listen)
            self.metrics_registration = KeptRegistration(self.services, registration, COMPONENT)
            self.metrics_registration.ensure()

    def stop(self) -> None:
        self.loop.stop()
        for watch in self.watches:
            watch.stop()
        if self.prober is not None:
            self.prober.stop()
        self.resolver.stop()
        self.dashboard_check.stop()
        if self.dns is not None:
            self.dns.stop()
        if self.metrics_registration is not None:
            self.metrics_registration.withdraw()
        if self.load_report is not None:
            self.load_report.withdraw()
        if self.dashboard_report is not None:
            self.dashboard_report.withdraw()

    def ready(self) -> tuple[bool, str]:
        if not self.watches or not all(w.connected for w in self.watches):
            return False, "not connected to Consul"
        if self.last_error:
            return False, self.last_error
        if self.loop.last_success is None:
            return False, "no reconcile pass yet"
        return True, "ready"

    def reconcile(self) -> float | None:
        for kept in (self.metrics_registration, self.presence):
            if kept is not None:
                kept.ensure()
        if not self.routes_watch.wait_ready(0) or not self.gateway_watch.wait_ready(0):
            return 1.0  # first answers from Consul not in yet: render nothing rather than an empty config
        self._apply_gateway_document(self.gateway_watch.latest)
        routes = parse_routes(self.routes_watch.latest)
        local = self.settings.local_cluster
        dashboard = self.settings.dashboard
        plan = plan_sites(
            routes,
            down_nodes(self.checks_watch.latest),
            self.settings.domains,
            local_cluster=local,
            resolved=self.resolver.answers(hostnames(routes, local_cluster=local)),
            reserved=frozenset({dashboard.host}) if dashboard is not None else frozenset(),
        )
        if self._hold_emptying(len(plan.sites)):
            return 1.0
        if plan.fail_open != self._fail_open:
            if plan.fail_open:
                log.warning(
                    "failing open: every upstream's agent is down for %s; keeping all their upstreams",
                    ", ".join(plan.fail_open),
                )
            else:
                log.info("no route fails open any more")
            self._fail_open = plan.fail_open
        for host in plan.skipped:
            log.warning("route host %s is outside the gateway's domains %s; not served", host, self.settings.domains)
        for problem in plan.refused:
            log.error("upstream left out of the gateway config: %s", problem)
        for host in plan.taken:
            log.error("route host %s is the dashboard's (Gateway spec.dashboard.host); not served as a route", host)
        verdict = self.dashboard_check.verdict(dashboard)
        failing = self.prober.failing if self.prober is not None else frozenset()
        dynamic = dynamic_sites(plan, self._pinned, self.settings.upstream_dns, self.settings.dns_refresh, failing)
        if self.prober is not None:
            self.prober.set_targets(dynamic.probes)
        if self.dns is not None:
            self.dns.publish(dynamic.table)  # before a load: a new site's name answers once Caddy asks
        site = dashboard_site(dashboard, verdict) if dashboard is not None else None
        text, refused = render_gateway(self.settings, dynamic.plan, site)
        for problem in refused:
            log.error("route left out of the gateway config: %s", problem)
        try:
            started = time.monotonic()
            if self.applier.apply(text):
                log.info(
                    "gateway config loaded: %d site(s) in %.0f ms", len(plan.sites), (time.monotonic() - started) * 1e3
                )
            self._pinned = {site.host: site.upstreams for site in dynamic.plan.sites}
            self._served_sites = len(plan.sites)
            self.last_error = None
            if self.load_report is not None:
                self.load_report.accepted()
            if self.dashboard_report is not None:  # once Caddy serves what it says
                self.dashboard_report.publish(dashboard, verdict)
            # Caddy serves this config: DNS may name this gateway now. Not held (Consul answered badly, or
            # this machine's serfHealth is still critical): soon again, as nothing else would wake a pass
            if self.presence is not None and not self.presence.hold():
                return CLAIM_RETRY
        except CaddyRejected as exc:
            self.last_error = str(exc)
            log.error("%s", exc)
            if self.load_report is not None:
                self.load_report.refused(exc.detail or str(exc))
            return 10.0
        return None

    def _health_changed(self, checks: list[CheckState]) -> None:
        """Wake a pass when the set of down nodes changed: the watch sees every check in the cluster,
        and a replica's check flapping changes nothing here."""
        down = down_nodes(checks)
        if down != self._down:
            self._down = down
            self.wakeup.notify("health")

    def _hold_emptying(self, planned_sites: int) -> bool:
        """True while a plan that would serve nothing must wait (``emptying_wait``): keep serving."""
        now = time.monotonic()
        if planned_sites or not self._served_sites:
            self._emptied_since = None
            return False
        if self._emptied_since is None:
            self._emptied_since = now
            log.warning("routes/ answered empty while %d site(s) are served; holding them", self._served_sites)
        return emptying_wait(self._served_sites, planned_sites, self._emptied_since, now) > 0

    def _apply_gateway_document(self, listing: Listing | None) -> None:
        entry = next((e for e in (listing.entries if listing else ()) if e.key == keys.DESIRED_GATEWAY), None)
        index = entry.modify_index if entry else 0
        if index == self._gateway_doc_index:
            return
        self._gateway_doc_index = index
        if entry is None:
            self.settings = self.base_settings
            return
        try:
            gateway = parse_stored_gateway(entry.value)
        except MeshopError as exc:
            log.error("keeping the previous gateway settings: %s", exc)
            return
        self.settings = replace(
            self.base_settings,
            tls_mode=gateway.tls_mode,
            email=gateway.tls_email,
            domains=tuple(gateway.domains),
            dashboard=gateway.dashboard,
        )
