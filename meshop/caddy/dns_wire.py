"""Upstreams for Caddy on DNS: pure encoding of the few answers its dynamic upstreams ask for.

Caddy 2.6's ``dynamic srv`` upstreams look up one SRV name per site at request time (cached for
``refresh``); each SRV record names a target and a port, and Caddy dials ``target:port`` through the
transport's resolver. meshop answers both from the gateway's route table, so an upstream change needs
no Caddy reload:

* ``<site label>.meshop.internal`` SRV: one record per upstream (priority 0, weight 1, the port);
* ``<a>-<b>-<c>-<d>.ip4.meshop.internal`` A and ``<32 hex digits>.ip6.meshop.internal`` AAAA: the
  address spelled in the name itself, so a target never depends on the table still holding it.

Only RFC 1035 basics: one question, class IN, no compression in what we parse (a query never needs it),
answers pointing back at the question. Everything else gets an error code, never an exception: the
packets come from a local socket but are still treated as hostile input.

An answer fits the asker's UDP buffer: 512 bytes, or the size its EDNS(0) OPT record offers (at most
1232, what Go's resolver in Caddy reads). A site with more upstreams than fit (~20 IPv4, ~16 IPv6 in
1232 bytes) gets as many as fit, starting at a rotating offset, so every upstream is served in turn
(Caddy asks again every ``refresh``). Without the cap Go read a cut datagram ("cannot unmarshal DNS
message") and the site fell back to its pinned static upstreams. The answer is not marked truncated:
Go would retry over TCP, which this responder does not speak.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Mapping

from meshop.model.digits import parse_uint

ZONE = "meshop.internal"
TTL = 1  # seconds; Caddy keeps its own cache for the site's ``refresh``
TYPE_A, TYPE_AAAA, TYPE_SRV = 1, 28, 33
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
TYPE_OPT = 41
UDP_PLAIN, UDP_MAX = 512, 1232  # without EDNS; the most we send even when a bigger buffer is offered

Table = Mapping[str, tuple[tuple[str, int], ...]]  # SRV name (lower case, no trailing dot) -> (address, port)


def site_name(host: str) -> str:
    """The SRV name of a route host: a fixed-length label (a host may be 253 characters long)."""
    return f"s{hashlib.sha256(host.lower().encode()).hexdigest()[:20]}.{ZONE}"


def target_name(address: str) -> str | None:
    """The target name spelling an IP address; None for anything else (a hostname upstream)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 4:
        return f"{str(ip).replace('.', '-')}.ip4.{ZONE}"
    return f"{ip.packed.hex()}.ip6.{ZONE}"


def address_of(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a target name spells (``target_name``'s inverse), or None."""
    label, _, rest = name.partition(".")
    try:
        if rest == f"ip4.{ZONE}":
            parts = label.split("-")
            if len(parts) == 4 and all(parse_uint(p, limit=255) is not None and len(p) <= 3 for p in parts):
                return ipaddress.IPv4Address(".".join(parts))
        elif rest == f"ip6.{ZONE}" and len(label) == 32:
            return ipaddress.IPv6Address(bytes.fromhex(label))
    except ValueError:
        return None
    return None


def answer(query: bytes, table: Table, rotate: int = 0) -> bytes | None:
    """The response to one DNS query packet, or None for a packet not worth an answer (too short, a
    response itself). Names under ``ZONE`` only; anything else is REFUSED. ``rotate``: where a cut
    SRV answer starts (the responder passes its query count)."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000:  # a response, not a query: never answer (no loops)
        return None
    opcode = (flags >> 11) & 0xF
    parsed = _question(query) if qdcount == 1 and opcode == 0 else None
    if parsed is None:
        return _header(ident, flags, FORMERR if opcode == 0 else NOTIMP) + b""
    name, qtype, qclass, end = parsed
    question = query[12:end]
    key = name.lower()
    if qclass != CLASS_IN or not (key == ZONE or key.endswith("." + ZONE)):
        return _header(ident, flags, REFUSED, qd=1) + question
    records: list[bytes] = []
    known = False
    if key in table:
        known = True
        if qtype == TYPE_SRV:
            for address, port in table[key]:
                target = target_name(address)
                if target is not None:
                    records.append(_record(TYPE_SRV, struct.pack("!HHH", 0, 1, port) + _encode_name(target)))
    else:
        ip = address_of(key)
        if ip is not None:
            known = True
            if qtype == TYPE_A and ip.version == 4:
                records.append(_record(TYPE_A, ip.packed))
            elif qtype == TYPE_AAAA and ip.version == 6:
                records.append(_record(TYPE_AAAA, ip.packed))
    rcode = NOERROR if known else NXDOMAIN
    records = _fitting(records, _udp_limit(query, end) - 12 - len(question), rotate)
    return _header(ident, flags, rcode, qd=1, an=len(records)) + question + b"".join(records)


def _udp_limit(query: bytes, end: int) -> int:
    """The asker's UDP buffer: the payload size of an OPT record right after the question, else 512."""
    arcount = struct.unpack("!H", query[10:12])[0]
    opt = query[end : end + 5]
    if arcount and len(opt) == 5 and opt[0] == 0 and struct.unpack("!H", opt[1:3])[0] == TYPE_OPT:
        return min(max(struct.unpack("!H", opt[3:5])[0], UDP_PLAIN), UDP_MAX)
    return UDP_PLAIN


def _fitting(records: list[bytes], room: int, rotate: int) -> list[bytes]:
    """``records`` when they fit in ``room`` bytes, else as many as fit from ``rotate`` on (cyclically)."""
    if sum(map(len, records)) <= room:
        return records
    start = rotate % len(records)
    out: list[bytes] = []
    for record in records[start:] + records[:start]:
        if len(record) > room:
            break
        out.append(record)
        room -= len(record)
    return out


def _header(ident: int, query_flags: int, rcode: int, *, qd: int = 0, an: int = 0) -> bytes:
    rd = query_flags & 0x0100
    flags = 0x8000 | 0x0400 | rd | (query_flags & 0x7800) | rcode  # QR, AA, RD copied, opcode copied
    return struct.pack("!HHHHHH", ident, flags, qd, an, 0, 0)


def _record(rtype: int, rdata: bytes) -> bytes:
    # name: a pointer to the question's name at offset 12
    return struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, TTL, len(rdata)) + rdata


def _question(packet: bytes) -> tuple[str, int, int, int] | None:
    """(name, type, class, end offset) of the first question, or None when malformed."""
    labels: list[str] = []
    offset, total = 12, 0
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:  # compression or an extended label type: never in a query we answer
            return None
        label = packet[offset : offset + length]
        total += length + 1
        if len(label) != length or total > 255 or not label.isascii():
            return None
        labels.append(label.decode("ascii"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ".".join(labels), qtype, qclass, offset + 4


def _encode_name(name: str) -> bytes:
    return b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.split(".")) + b"\0"


def query(name: str, qtype: int, ident: int = 0x4D53) -> bytes:
    """A query packet (tests and the benchmark use it; Caddy sends its own)."""
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
