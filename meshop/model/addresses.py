"""Node addresses and ports as untrusted input: what a node record may claim before anyone dials it. Pure.

A node record (``nodes/<n>``) is written by that node's agent, so a compromised node chooses every byte
of it. Whatever reaches an upstream list must therefore be a plain IPv4/IPv6 address (no zone id: Python
accepts ``fe80::1%<anything>``, newlines and braces included) or an RFC 1123 hostname, and must not point
back at the reader's own host: loopback, link-local, unspecified and multicast addresses (and the
``localhost`` names) are refused unless the cluster is explicitly local (``--local-cluster``: the demo and
the tests, where every node is 127.0.0.1). Ports are 1-65535. IPv6 upstreams are written bracketed.

A hostname that only looks like a name is refused too (issue 24): ``127.1``, ``0``, ``2130706433`` or
``0x7f.1`` are RFC 1123 hostnames to ``is_hostname`` but IPv4 addresses to ``inet_aton`` (and so to
getaddrinfo, curl, ssh and Go's resolver fallback): ``0`` and ``127.1`` are this host. A name whose last
label is all digits or ``0x``-hex is never a DNS name a registrar hands out (no top-level domain is
numeric), so it is refused whatever it would resolve to.
"""

from __future__ import annotations

import ipaddress
import re

from meshop.model.names import is_hostname

MAX_PORT = 65535
_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.ASCII | re.IGNORECASE)


def numeric_looking(name: str) -> bool:
    """True for a name whose last label is all digits or ``0x``-hex: what ``inet_aton`` reads as an
    IPv4 address in shorthand (``127.1``, ``0``, ``2130706433``, ``0x7f.1``), never a real DNS name."""
    return _NUMERIC_LABEL.fullmatch(name.rstrip(".").rpartition(".")[2]) is not None


def address_problem(address: object, *, local_cluster: bool = False) -> str | None:
    """Why ``address`` must not be dialled as a node's address, or None when it may be."""
    if not isinstance(address, str) or not address:
        return "no address"
    if len(address) > 253:
        return "address longer than 253 characters"
    ip = _ip(address)
    if ip is None:
        if "%" in address:
            return f"{address!r} carries a zone id; only plain addresses are accepted"
        if not is_hostname(address):
            return f"{address!r} is neither a plain IP address nor a hostname"
        if numeric_looking(address):
            return f"{address!r} reads as an IPv4 address in shorthand (its last label is numeric); write the address"
        if not local_cluster and (address in _LOCAL_NAMES or address.endswith(".localhost")):
            return f"{address!r} names this host (loopback); allowed only with --local-cluster"
        return None
    if local_cluster:
        return None if not ip.is_multicast else f"{address} is a multicast address"
    mapped = getattr(ip, "ipv4_mapped", None)
    for candidate in (ip, mapped) if mapped else (ip,):
        for what, flag in (
            ("unspecified", candidate.is_unspecified),
            ("loopback", candidate.is_loopback),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
        ):
            if flag:
                return f"{address} is a {what} address; allowed only with --local-cluster"
    return None


def is_ip_address(text: str) -> bool:
    """True for a plain IPv4/IPv6 address (no zone id); False for a hostname or anything else."""
    return _ip(text) is not None


def port_problem(port: object, *, zero_ok: bool = False) -> str | None:
    """Why ``port`` is not a TCP port (``zero_ok``: 0 means "none", as ``ingressPort`` uses it)."""
    if isinstance(port, bool) or not isinstance(port, int):
        return f"port {port!r} is not an integer"
    if port == 0 and zero_ok:
        return None
    if not 0 < port <= MAX_PORT:
        return f"port {port} is outside 1-{MAX_PORT}"
    return None


def join_host_port(address: str, port: int) -> str:
    """``address:port`` with an IPv6 address in brackets (``[2001:db8::1]:80``), as URLs and Caddy want."""
    ip = _ip(address)
    if ip is not None and ip.version == 6:
        return f"[{ip.compressed}]:{port}"
    return f"{address}:{port}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in text:
        return None  # a zone id: refused by every caller, never parsed (ipaddress keeps anything after '%')
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
