"""The gateway's own registration in Consul (``meshop-gateway``): what the DNS writer follows.

Each ``meshop gateway run --advertise-addr A`` registers ``meshop-gateway-<id>`` with address A (what
DNS records will hold) and two checks run by the local Consul agent: HTTP on the gateway's ``/readyz``
(connected to Consul, last config accepted) and TCP on the port its Caddy serves. Either failing, or
the machine's ``serfHealth``, takes the gateway out of DNS.

Its claim ``gateways/<id>`` = the advertised address (KV only the gateway role may write) vouches for the
registration: the DNS writer follows a registration only when a claim names its id and address, so a
``meshop-gateway`` registration made with any other token is ignored (issue 24).

The claim is *held* (a Consul lock) by a session tied to the machine's ``serfHealth``, taken only once
Caddy serves the gateway's config, and the writer counts a claim that says ``held`` only while a session
holds it. That closes the window a rebooted gateway host would otherwise open: its Consul agent rejoins
(``serfHealth`` passing again) while the catalog still shows the checks it last synced before the power
went, passing, until the agent syncs its fresh ones; DNS then pointed at a machine whose Caddy was not
listening yet (~1 s of refused connections in the fleet test). The machine's death invalidates the session
and releases the claim; the next gateway process takes it again once it serves. The session has no
lock-delay (the claim marks liveness, it excludes nobody) and no TTL (a hung gateway fails its checks).
A gateway whose token may not create sessions (a policy from before this, until ``meshop acl sync``)
writes the plain claim of older versions, which the writer still accepts.

A planned stop drains: the registration goes into Consul maintenance (critical at once, so the writer
withdraws its address), the gateway keeps serving for ``drain`` seconds (set it to the record TTL plus
a margin: resolvers keep the old answer that long), and only then stops.
"""

from __future__ import annotations

import logging
import time

from meshop.consul.services import CheckSpec, KeptRegistration, Registration, Services
from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore
from meshop.dns.targets import claim_value
from meshop.errors import ConsulAccessDenied, ConsulError
from meshop.model import keys

log = logging.getLogger(__name__)

SERVICE = "meshop-gateway"


def local_target(listen: str) -> str:
    """``host:port`` a local Consul agent can dial for a listener (a wildcard bind -> loopback)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def gateway_registration(
    gateway_id: str, advertise: str, serve: str, status_listen: str, interval: float = 2.0
) -> Registration:
    every = f"{max(1, int(interval * 1000))}ms"
    checks = (
        CheckSpec(
            f"{SERVICE}-{gateway_id}:ready",
            f"gateway {gateway_id} ready",
            http=f"http://{local_target(status_listen)}/readyz",
            interval=every,
            timeout="1s",
            deregister_after="10m",
        ),
        CheckSpec(
            f"{SERVICE}-{gateway_id}:caddy",
            f"gateway {gateway_id} Caddy listening",
            tcp=local_target(serve),
            interval=every,
            timeout="1s",
        ),
    )
    port = int(serve.rpartition(":")[2])
    return Registration(
        f"{SERVICE}-{gateway_id}", SERVICE, advertise, port, meta={"id": gateway_id}, checks=checks, replace_checks=True
    )


def write_claim(store: KVStore, gateway_id: str, address: str) -> None:
    """The plain ``gateways/<id>`` claim of older gateways (no session): what a gateway writes while its
    policy lets it create no session."""
    store.put(keys.gateway_claim(gateway_id), claim_value(address))


class Presence(KeptRegistration):
    """The registration, kept from the start; the claim, held once the gateway serves (``hold``)."""

    def __init__(self, services: Services, registration: Registration, store: KVStore | None = None) -> None:
        super().__init__(services, registration, "gateway")
        self.store = store
        self.sessions = Sessions(store) if store is not None else None
        self.session: str | None = None
        self.plain = False  # the policy refused a session: the plain claim was written instead (retried)
        self.swept = False  # a previous run's sessions on this machine destroyed
        self.gateway_id = registration.meta.get("id", "")
        prefix = store.config.prefix if store is not None else ""
        # the prefix too: two meshop installs on one Consul may use the same gateway id
        self.session_name = f"{SERVICE}-{prefix}-{self.gateway_id}"

    def sweep(self) -> None:
        """At start, before Caddy serves: this run's session, then destroy the sessions of an earlier run of
        this gateway on this machine. One may still hold the claim (a restart quicker than Consul's failure
        detection, or a crash systemd restarted), and DNS would follow it while the catalog's checks are the
        old run's. Only this machine's (its Consul node's, learnt from the new session: the gateway's token
        may not read the agent): another machine's gateway with the same id is a mistake, not ours to undo.
        Retried by ``hold`` while Consul does not answer."""
        if self.sessions is None or self.swept:
            return
        try:
            if self.session is None:
                self.session = self.sessions.create(self.session_name, lock_delay=0)
            node = self.sessions.node_of(self.session)
            if node is None:
                self.session = None  # gone already (this machine's serfHealth failing): next time
                return
            for old in self.sessions.named(self.session_name, node):
                if old != self.session:
                    self.sessions.destroy(old)
            self.swept = True
        except ConsulAccessDenied:
            self.swept = True  # a policy from before held claims: no session of ours to clear (``hold``)
        except ConsulError as exc:
            log.warning("could not clear the earlier sessions of gateway %s (retrying): %s", self.gateway_id, exc)

    def hold(self) -> bool:
        """Hold the claim with this machine's session (once Caddy serves): a no-op while already held,
        retaken after the session was invalidated (the machine's Consul agent was gone for a while). False
        while it is not held (the caller retries soon: nothing else would wake it when Consul recovers)."""
        if self.sessions is None or self.store is None:
            return True
        key = keys.gateway_claim(self.gateway_id)
        self.sweep()  # first: it may destroy the session the claim is held by
        if not self.swept:
            return False
        try:
            entry = self.store.get(key)
            if entry is not None and self.session is not None and entry.session == self.session:
                return True
            if self.session is not None and not self.sessions.alive(self.session):
                self.session = None  # invalidated: this machine's serfHealth failed a while; a new one
            if self.session is None:
                try:
                    self.session = self.sessions.create(self.session_name, lock_delay=0)
                except ConsulAccessDenied as exc:
                    return self._plain(exc)
                entry = self.store.get(key)
            if entry is not None and entry.session and entry.session != self.session:
                # never taken from a live session: two gateways with one --id would take it in turns forever
                log.error(
                    "the claim %s is held by another session: is another gateway running with --id %s?",
                    key,
                    self.gateway_id,
                )
                return False
            value = claim_value(self.registration.address, held=True)
            if self.sessions.acquire(key, self.session, value) is not None:
                self.plain = False
                log.info("holding the claim %s: DNS may name this gateway", key)
                return True
            self.session = None  # invalidated between the two calls: a new one next time
            log.warning("could not take the claim %s (retrying)", key)
        except ConsulError as exc:
            log.warning("could not hold the claim of gateway %s (retrying): %s", self.gateway_id, exc)
        return False

    def _plain(self, exc: ConsulAccessDenied) -> bool:
        """The token may not create sessions (a policy from before held claims): the plain claim, which DNS
        follows as it did before; a session is tried again on every call (after ``meshop acl sync``)."""
        if self.plain:
            return True  # written already: only the session is tried again
        log.warning(
            "this gateway's token may not create a Consul session (%s): writing the plain claim of older "
            "versions, which DNS follows without the liveness check; run `meshop acl sync`",
            exc,
        )
        assert self.store is not None
        try:
            write_claim(self.store, self.gateway_id, self.registration.address)
            self.plain = True
        except ConsulError as error:
            log.warning("could not write the claim of gateway %s (retrying): %s", self.gateway_id, error)
            return False
        return True

    def let_go(self) -> None:
        """On a clean stop: destroy the session, which releases the claim (DNS already drained)."""
        if self.sessions is None or self.session is None:
            return
        try:
            self.sessions.destroy(self.session)
            self.session = None
        except ConsulError as exc:
            log.warning("could not release the claim of gateway %s: %s", self.gateway_id, exc)

    def drain(self, seconds: float) -> None:
        """Mark the registration critical (maintenance), then keep serving ``seconds`` before returning."""
        if seconds <= 0 or not self.registered:
            return
        try:
            self.services.maintenance(self.registration.service_id, True, "draining: planned stop")
        except ConsulError as exc:
            log.warning("could not drain %s: %s; stopping at once", self.registration.service_id, exc)
            return
        log.info("draining: out of DNS; serving %.0f s more before stopping", seconds)
        time.sleep(seconds)


def presence(services: Services, registration: Registration, store: KVStore | None = None) -> Presence:
    return Presence(services, registration, store)
