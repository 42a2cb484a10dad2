"""HTTPS on the node Caddy (``--ingress-https-port``): the TLS mode and domains it takes from the Gateway
document, so a node is ready to answer HTTPS clients before the DNS writer points a host at it (no
healthy gateway, docs/dns.md "Direct to the nodes").

The Gateway document (``desired/gateway``) is written by operators, and read here as hostile input: it
must parse and validate as the gateway's does (``parse_stored_gateway``); a bad one keeps what was read before.
The hosts themselves never come from it: only routes of services with ready replicas on this node get an
HTTPS site (``snippets.render_ingress``); the document's ``domains`` only narrow them, as on the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshop.model import parse_stored_gateway
from meshop.model.names import host_in_domain

OFF = "off"


@dataclass(frozen=True)
class NodeTLS:
    """``mode``: acme | internal | off (no HTTPS sites); ``domains``: empty serves every route host."""

    mode: str = OFF
    domains: tuple[str, ...] = ()

    def serves(self, host: str) -> bool:
        if self.mode == OFF:
            return False
        return not self.domains or any(host_in_domain(host, d) for d in self.domains)


NO_TLS = NodeTLS()


def tls_from_document(value: bytes | None) -> NodeTLS:
    """The node's TLS from the Gateway document's text (None: no document, so no HTTPS sites).

    Raises ``MeshopError`` (a ``DocumentError``) naming the key and the reason for a document that does
    not validate."""
    if value is None:
        return NO_TLS
    gateway = parse_stored_gateway(value)
    return NodeTLS(gateway.tls_mode, tuple(gateway.domains))
