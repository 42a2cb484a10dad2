"""The gateway's own registration in Consul (``meshop-gateway``): what the DNS writer follows.

Each ``meshop gateway run --advertise-addr A`` registers ``meshop-gateway-<id>`` with address A (what
DNS records will hold) and two checks run by the local Consul agent: HTTP on the gateway's ``/readyz``
(connected to Consul, last config accepted) and TCP on the port its Caddy serves. Either failing, or
the machine's ``serfHealth``, takes the gateway out of DNS.

Before registering, the gateway writes its claim ``gateways/<id>`` = the advertised address (KV only the
gateway role may write): the DNS writer follows a registration only when a claim vouches for its id and
address, so a ``meshop-gateway`` registration made with any other token is ignored (issue 24). The
claim stays after a stop (a registration is what makes a gateway count; the next start rewrites it).

A planned stop drains: the registration goes into Consul maintenance (critical at once, so the writer
withdraws its address), the gateway keeps serving for ``drain`` seconds (set it to the record TTL plus
a margin: resolvers keep the old answer that long), and only then stops.
"""

from __future__ import annotations

import logging
import time

from meshop.consul.services import CheckSpec, KeptRegistration, Registration, Services
from meshop.consul.store import KVStore
from meshop.dns.targets import claim_value
from meshop.errors import ConsulError
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
    """``gateways/<id>`` = the address: what makes the DNS writer believe the registration (gateway token)."""
    store.put(keys.gateway_claim(gateway_id), claim_value(address))


class Presence(KeptRegistration):
    def __init__(self, services: Services, registration: Registration, store: KVStore | None = None) -> None:
        super().__init__(services, registration, "gateway")
        self.store = store
        self.claimed = store is None

    def ensure(self) -> None:
        """Claim first (the DNS writer ignores an unclaimed registration), then register."""
        if not self.claimed and self.store is not None:
            gateway_id = self.registration.meta.get("id", "")
            try:
                write_claim(self.store, gateway_id, self.registration.address)
                self.claimed = True
            except ConsulError as exc:
                log.warning("could not write the claim of gateway %s (retrying next pass): %s", gateway_id, exc)
                return
        super().ensure()

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
