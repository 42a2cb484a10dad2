"""The DNS writer: while this controller leads, keep the Gateway's DNS zone pointing at healthy gateways.

One writer at a time: it runs in every controller but acts only while that controller holds the
confirmed leader lease (``LeaderElection.confirmed``), and every KV write it makes (events,
``status/dns``) carries the leader guard. A DNS update cannot carry a Consul guard: the lease is checked
again right before each one, and a deposed leader's late update is undone by the next leader's pass
(level-triggered: it reads the zone and the cluster afresh).

Each pass reads (watches, so changes wake it at once): the Gateway document (``desired/gateway``:
hostile input, validated by the same rules as ``meshop apply``), ``routes/`` (hosts and the nodes
serving them), and the health of every ``meshop-gateway`` registration (its Consul checks and its
node's ``serfHealth``; read afresh on every pass, the watch only wakes it), and the gateways' claims
(``gateways/``). Registrations are hostile too: only ids
``meshop-gateway-<label>`` with an address no node may not claim, and that a gateway claimed for that
address (``targets.gateway_claims``), count. The TSIG secret (rfc2136) or API key (powerdns) is read
from ``<prefix>/secrets/meshop-dns/`` (nowhere else) on each pass and lives only in the provider: it is
never logged, evented or written to status. Then ``targets.desired_records`` -> provider ``read`` ->
``plan`` -> ``apply`` per change, one event per change, ``status/dns`` when it changed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from meshop import metrics
from meshop.consul.events import EventLog
from meshop.consul.secrets import SecretReader
from meshop.consul.services import InstanceHealth, Services
from meshop.consul.sessions import Lock
from meshop.consul.store import KVStore, Listing, TxnOp
from meshop.consul.watch import Watch, watch_prefix
from meshop.daemon.backoff import BackoffPolicy, Streak
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.threads import DaemonThread
from meshop.daemon.wakeup import Wakeup
from meshop.dns.plan import plan
from meshop.dns.powerdns import PowerDnsProvider, PowerDnsSettings
from meshop.dns.provider import DnsError, DnsRefused, Provider
from meshop.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from meshop.dns.targets import Claim, GatewayInstance, desired_records, gateway_claims
from meshop.errors import ConsulError, MeshopError, SecretRefused
from meshop.model import keys, parse_stored_gateway
from meshop.model.addresses import address_problem
from meshop.model.gateway import Gateway, GatewayDNS
from meshop.model.gateway_rules import split_server_address
from meshop.model.inventory import parse_inventory
from meshop.model.names import host_in_domain, is_dns_label, is_hostname
from meshop.model.records import DnsStatus, RouteRecord, dumps, loads_json

log = logging.getLogger(__name__)

GATEWAY_SERVICE = "meshop-gateway"
COMPONENT = "controller"
LOOP = "controller-dns"
# a failed DNS pass (zone unreadable, key refused) is caught and retried by this policy, not the loop's
RETRY = BackoffPolicy(base=2.0, maximum=60.0, jitter=0.2)
EVENT_KINDS = {"create": "DnsRecordCreated", "update": "DnsRecordUpdated", "withdraw": "DnsRecordWithdrawn"}

ProviderFactory = Callable[[GatewayDNS, str], Provider]


def rfc2136_provider(dns: GatewayDNS, secret: str) -> Provider:
    server = split_server_address(dns.server or "")
    if server is None:
        raise DnsError(f"spec.dns.server {dns.server!r} is not host:port")
    host, port = server
    settings = Rfc2136Settings(host, port, dns.zone or "", dns.key_name or "", secret, dns.key_algorithm)
    return Rfc2136Provider(settings)


def powerdns_provider(dns: GatewayDNS, secret: str) -> Provider:
    return PowerDnsProvider(PowerDnsSettings(dns.api_url or "", dns.zone or "", secret.strip(), dns.server_id))


PROVIDERS: dict[str, ProviderFactory] = {"rfc2136": rfc2136_provider, "powerdns": powerdns_provider}


def make_provider(dns: GatewayDNS, secret: str) -> Provider:
    """The provider ``spec.dns.provider`` names, with the secret (TSIG secret or API key) read from KV."""
    factory = PROVIDERS.get(dns.provider)
    if factory is None:
        raise DnsError(f"spec.dns.provider {dns.provider!r} is not one of {', '.join(PROVIDERS)}")
    return factory(dns, secret)


def gateway_instances(
    instances: list[InstanceHealth] | None, claims: Mapping[str, Claim], *, local_cluster: bool
) -> tuple[list, list[str]]:
    """The registrations that are gateways' own, with the address each advertises and ``claims`` vouches
    for; and why others were left out. Healthy means every check passes, the node's ``serfHealth`` included."""
    found: list[GatewayInstance] = []
    refused: list[str] = []
    for inst in instances or ():
        gid = inst.service_id.removeprefix(f"{GATEWAY_SERVICE}-")
        if gid == inst.service_id or not is_dns_label(gid) or inst.meta.get("id", gid) != gid:
            refused.append(f"registration {inst.service_id[:80]!r} is not a gateway's own")
            continue
        address = inst.service_address or inst.address
        claim = claims.get(gid)
        if claim is None or claim.address != address:
            refused.append(f"gateway {gid}: no claim in gateways/ for {address[:80]!r} (not registered by a gateway)")
            continue
        problem = address_problem(address, local_cluster=local_cluster)
        if problem:
            refused.append(f"gateway {gid}: {problem}")
            continue
        # a claim not held: its machine went down and the gateway there does not serve again yet
        found.append(GatewayInstance(gid, address, inst.status == "passing" and claim.live))
    return found, refused


def served_hosts(
    listing: Listing | None,
    domains: tuple[str, ...],
    *,
    local_cluster: bool,
    inventory: Mapping[str, tuple[str, ...]] | None = None,
    trust_records: bool = False,
    dashboard_host: str = "",
) -> dict[str, list[str]]:
    """host -> addresses of the nodes with a healthy upstream for it, for hosts in the Gateway's domains.

    The Gateway document's ``dashboard_host`` is served by the gateways alone: it gets their records
    (with no node address, so none while no gateway is healthy), whatever a route record says of it.

    With ``inventory`` (issue 24), a second check behind the controller's: an upstream's address becomes a
    record only when its node's ``inventory/nodes/<node>`` lists it (or the node has no entry and the
    controller runs with ``--trust-node-records``), so DNS direct mode never names an address a node
    chose for itself."""
    hosts: dict[str, list[str]] = {}
    for entry in listing.entries if listing else ():
        try:
            route = RouteRecord.from_dict(loads_json(entry.value))
        except (ValueError, KeyError, TypeError):
            continue
        if entry.key != keys.route(route.host) or not any(host_in_domain(route.host, d) for d in domains):
            continue
        if not is_hostname(route.host):  # RouteRecord takes "*.apps…": a route never makes a wildcard record
            continue
        addresses = hosts.setdefault(route.host, [])
        for u in route.upstreams:
            if not u.healthy or address_problem(u.address, local_cluster=local_cluster) is not None:
                continue
            if inventory is not None:
                listed = inventory.get(u.node)
                if (u.address not in listed) if listed is not None else not trust_records:
                    continue
            addresses.append(u.address)
    if dashboard_host and any(host_in_domain(dashboard_host, d) for d in domains):
        hosts[dashboard_host] = []
    return hosts


def node_inventory(listing: Listing | None) -> dict[str, tuple[str, ...]]:
    """node -> the addresses its ``inventory/nodes/<node>`` entry lists (broken entries list nothing)."""
    found: dict[str, tuple[str, ...]] = {}
    for entry in listing.entries if listing else ():
        name = entry.key[len(keys.INVENTORY_NODES) :]
        addresses = parse_inventory(entry.value)
        if addresses is not None and is_dns_label(name):
            found[name] = addresses
    return found


@dataclass
class DnsOutcome:
    """What the last pass did (tests, ``status/dns``)."""

    status: DnsStatus
    changes: int = 0


class DnsWriter:
    def __init__(
        self,
        store: KVStore,
        services: Services,
        lock: Callable[[], Lock | None],
        *,
        local_cluster: bool = False,
        trust_records: bool = False,
        resync: float = 30.0,
        wait: str = "30s",
        provider_factory: ProviderFactory = make_provider,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.services = services
        self.lock = lock  # the confirmed leader lock, or None
        self.local_cluster = local_cluster
        self.trust_records = trust_records  # --trust-node-records: a node without inventory entry counts
        self.wait = wait
        self.provider_factory = provider_factory
        self.clock = clock  # wall: stamps status/dns lastUpdate and events only; no deadline here uses it
        self.secrets = SecretReader(store.config, store.client)
        self.events = EventLog(store, COMPONENT, clock=clock)
        self.wakeup = Wakeup()
        self.loop = ReconcileLoop(LOOP, self.reconcile, self.wakeup, resync=resync)
        self.watches: list[Watch] = []
        self.status = DnsStatus()
        self._written = ""  # status/dns as this writer last wrote it
        self._failures = Streak(RETRY)  # failed passes in a row: 2 s, 4 s, ... 60 s until one succeeds
        self._last_error_evented = ""
        self._thread: DaemonThread | None = None

    def start(self) -> DnsWriter:
        notify = self.wakeup.notify
        self.gateway_watch = watch_prefix(
            self.store, keys.DESIRED_GATEWAY, lambda _: notify("gateway"), wait=self.wait, component=COMPONENT
        )
        self.routes_watch = watch_prefix(self.store, keys.ROUTES, lambda _: notify("routes"), wait=self.wait)
        self.gateways_watch = Watch(
            f"health:{GATEWAY_SERVICE}",
            lambda index, w: self.services.instances(GATEWAY_SERVICE, index, w),
            lambda _: notify("gateways"),
            wait=self.wait,
            component=COMPONENT,
        ).start()
        self.claims_watch = watch_prefix(self.store, keys.GATEWAYS, lambda _: notify("claims"), wait=self.wait)
        self.inventory_watch = watch_prefix(
            self.store, keys.INVENTORY_NODES, lambda _: notify("inventory"), wait=self.wait
        )
        self.watches = [
            self.gateway_watch,
            self.routes_watch,
            self.gateways_watch,
            self.claims_watch,
            self.inventory_watch,
        ]
        self._thread = self.loop.start("controller-dns")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.loop.stop()
        for watch in self.watches:
            watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the pass -----------------------------------------------------------------------------------

    def reconcile(self) -> float | None:
        lock = self.lock()
        if lock is None:
            self._written = ""  # a later leadership starts from what is in KV, not what we wrote
            for mode in ("gateways", "direct"):
                metrics.dns_names.labels(mode).set(0)
            metrics.dns_failing.set(0)  # only the leader reports DNS health
            return None
        if not all(w.wait_ready(0) for w in self.watches):
            return 0.2
        if not self._written:
            self._resume()
        try:
            gateway = self._gateway()
        except DnsError as exc:
            return self._failed(lock, self.status, exc)
        if gateway is None or gateway.dns.provider == "none":
            metrics.dns_failing.set(0)
            return self._publish(lock, DnsStatus())
        dns = gateway.dns
        base = DnsStatus(provider=dns.provider, zone=(dns.zone or "").rstrip("."))
        try:
            outcome = self._pass(lock, gateway, base)
        except (MeshopError, ConsulError) as exc:
            return self._failed(lock, base, exc)
        self._failures.succeeded()
        self._last_error_evented = ""
        metrics.dns_failing.set(0)
        return self._publish(lock, outcome.status)

    def _pass(self, lock: Lock, gateway: Gateway, base: DnsStatus) -> DnsOutcome:
        dns = gateway.dns
        # The gateways' health and their claims are read afresh, not taken from the watches: when the Raft
        # leader's host dies, a watch's query in flight to it hangs ~10 s while a new leader (and this pass)
        # runs; its last answer still shows the dead host's gateway passing, and its claim held. When that
        # host boots, its serfHealth passes at once and the checks synced before the power went still
        # pass: only the claim, released with the dead machine's session, tells (gateway/presence.py). A
        # stale claims watch named the booted gw ~1 s before it served (the fleet's back_in_dns).
        _, instances = self.services.instances(GATEWAY_SERVICE)
        claimed = self.store.list(keys.GATEWAYS)  # after the health: as new as it, or newer
        claims = gateway_claims(((e.key, e.value, e.session) for e in claimed.entries), keys.GATEWAYS)
        gateways, refused = gateway_instances(instances, claims, local_cluster=self.local_cluster)
        for problem in refused:
            log.warning("DNS: %s; not used", problem)
        hosts = served_hosts(
            self.routes_watch.latest,
            gateway.domains,
            local_cluster=self.local_cluster,
            inventory=node_inventory(self.inventory_watch.latest),
            trust_records=self.trust_records,
            dashboard_host=gateway.dashboard.host if gateway.dashboard is not None else "",
        )
        targets = desired_records(
            hosts, gateways, zone=dns.zone or "", wildcard=dns.records == "wildcard", domains=gateway.domains
        )
        try:
            secret = self.secrets.get(keys.DNS_SECRETS_OWNER, dns.key_secret_key or "")
        except SecretRefused as exc:
            raise DnsError(f"spec.dns.keySecretKey: {exc}") from None
        if secret is None:
            raise DnsError(f"spec.dns.keySecretKey: Consul key {dns.key_secret_key} does not exist")
        provider = self.provider_factory(dns, secret)
        owner = dns.owner_id or gateway.name
        result = plan(targets.records, provider.read(), owner, dns.ttl)
        for conflict in result.conflicts:
            log.warning("DNS: %s", conflict)
        status = DnsStatus(
            base.provider,
            base.zone,
            targets.mode,
            targets.gateways,
            len(targets.records),
            self.status.last_update,
            self.status.last_change,
            "",
            result.conflicts,
        )
        for mode in ("gateways", "direct"):
            metrics.dns_names.labels(mode).set(len(targets.records) if mode == targets.mode else 0)
        for change in result.changes:
            if self.lock() != lock:
                raise DnsError("leadership lost during the pass; the remaining DNS changes are left to the next leader")
            try:
                provider.apply(change, owner)
            except DnsRefused:
                metrics.dns_updates_total.labels(change.kind, "refused").inc()
                raise
            except DnsError:
                metrics.dns_updates_total.labels(change.kind, "error").inc()
                raise
            metrics.dns_updates_total.labels(change.kind, "ok").inc()
            log.info("DNS (%s): %s", targets.mode, change.describe())
            status = replace(status, last_update=self.clock(), last_change=change.describe())
            self.status = status
            self._event(
                lock, EVENT_KINDS[change.kind], f"dns/{change.name}", f"{change.describe()}; mode {targets.mode}"
            )
        return DnsOutcome(status, len(result.changes))

    def _failed(self, lock: Lock, base: DnsStatus, exc: Exception) -> float:
        delay = self._failures.failed()
        metrics.dns_failing.set(1)
        message = str(exc)[:500]
        log.error("DNS update failed: %s", message)
        if isinstance(exc, ConsulError):
            metrics.consul_errors_total.labels(COMPONENT, "dns").inc()
        status = DnsStatus(
            base.provider,
            base.zone,
            self.status.mode,
            self.status.gateways,
            self.status.names,
            self.status.last_update,
            self.status.last_change,
            message,
            self.status.conflicts,
        )
        if message != self._last_error_evented:
            self._last_error_evented = message
            with contextlib.suppress(ConsulError, DnsError):
                self._event(lock, "DnsUpdateFailed", "dns/" + (base.zone or "zone"), message)
        with contextlib.suppress(ConsulError):
            self._publish(lock, status)
        return delay

    def _resume(self) -> None:
        """A new leader starts from the ``status/dns`` its predecessor wrote (last update and change)."""
        try:
            entry = self.store.get(keys.STATUS_DNS)
            if entry is not None:
                self.status = DnsStatus.from_dict(loads_json(entry.value))
                self._written = entry.value.decode() if isinstance(entry.value, bytes) else str(entry.value)
        except (ConsulError, ValueError, KeyError, TypeError) as exc:
            log.warning("DNS: could not read the last status/dns (%s); starting afresh", exc)

    def _gateway(self) -> Gateway | None:
        listing = self.gateway_watch.latest
        entry = next((e for e in (listing.entries if listing else ()) if e.key == keys.DESIRED_GATEWAY), None)
        if entry is None:
            return None
        try:
            return parse_stored_gateway(entry.value)
        except MeshopError as exc:
            raise DnsError(f"the Gateway document is not valid; DNS left as it is: {exc}") from None

    def _event(self, lock: Lock, kind: str, obj: str, message: str) -> None:
        self.store.transact([lock.guard(), self.events.prepare(kind, obj, message)])
        self.events.appended(1, lock.guard())

    def _publish(self, lock: Lock, status: DnsStatus) -> float | None:
        self.status = status
        text = dumps(status)
        if text != self._written:
            self.store.transact([lock.guard(), TxnOp.set(keys.STATUS_DNS, text)])
            self._written = text
        return None
