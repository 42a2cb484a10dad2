"""The gateway's own registration in Consul (``meshop-gateway``): what the DNS writer follows.

Each ``meshop gateway run --advertise-addr A`` registers ``meshop-gateway-<id>`` with address A (what
DNS records will hold) and two checks run by the local Consul agent: HTTP on the gateway's ``/readyz``
(connected to Consul, last config accepted) and TCP on the port its Caddy serves. Either failing, or
the machine's ``serfHealth``, takes the gateway out of DNS.

A planned stop drains: the registration goes into Consul maintenance (critical at once, so the writer
withdraws its address), the gateway keeps serving for ``drain`` seconds (set it to the record TTL plus
a margin: resolvers keep the old answer that long), and only then stops.
"""

from __future__ import annotations

import logging
import time

from meshop.consul.services import CheckSpec, KeptRegistration, Registration, Services
from meshop.errors import ConsulError

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


class Presence(KeptRegistration):
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


def presence(services: Services, registration: Registration) -> Presence:
    return Presence(services, registration, "gateway")
