"""The DNS provider interface: read a zone's names, apply one planned change. RFC 2136 is the one built
(``rfc2136.py``); another provider (Cloudflare, ...) implements the same two methods and the writer
does not change.
"""

from __future__ import annotations

from typing import Protocol

from meshop.dns.plan import Change, NameState
from meshop.errors import MeshopError


class DnsError(MeshopError):
    """The DNS server could not be read or refused an update. Messages name the server, zone, key name
    and the server's answer, never the key's secret."""


class DnsRefused(DnsError):
    """The server answered and said no (TSIG key unknown or wrong, policy, a failed precondition)."""


class Provider(Protocol):
    def read(self) -> dict[str, NameState]:
        """Every name of the zone with its A, AAAA, TXT and CNAME records (lowercase, no final dot)."""
        ...

    def apply(self, change: Change, owner: str) -> None:
        """Carry out one change, atomically and only if the name is still as ``change`` read it."""
        ...
