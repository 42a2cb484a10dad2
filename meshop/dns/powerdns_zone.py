"""PowerDNS's zone answer, parsed as hostile input: what the PowerDNS provider may believe about a zone.

A compromised or broken server (or something else listening on its address) must not make meshop
write records it should not: the answer is bounded (size, record sets, records per set, lengths), every
field is type-checked, A/AAAA contents must be addresses of their family, a record set outside the zone
or listed twice fails the whole read. Names that are not plain DNS names (letters, digits, ``-``,
``_``, ``*``) are skipped: meshop never manages such a name, so not reading it cannot hide a record it
would overwrite. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re

from meshop.dns.plan import NameState

MAX_RESPONSE = 16 * 1024 * 1024  # bytes of one answer
MAX_RRSETS = 100_000
MAX_RECORDS = 10_000  # per record set
MAX_CONTENT = 4096  # characters of one record's content
MAX_TTL = 2**31 - 1
PLAIN_NAME = re.compile(r"^[a-z0-9_*-]+(\.[a-z0-9_-]+)*$")


def parse_zone(body: bytes, zone: str) -> dict[str, NameState]:
    """Every name of ``zone`` (lowercase, no final dot) with its A, AAAA, TXT and CNAME records; raises
    ValueError naming what is wrong."""
    if len(body) > MAX_RESPONSE:
        raise ValueError(f"larger than {MAX_RESPONSE} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rrsets"), list):
        raise ValueError("no rrsets list")
    rrsets = doc["rrsets"]
    if len(rrsets) > MAX_RRSETS:
        raise ValueError(f"more than {MAX_RRSETS} record sets")
    found: dict[str, dict] = {}
    seen: set[tuple[str, str]] = set()
    for i, rrset in enumerate(rrsets):
        name, rdtype, ttl, contents = _rrset(rrset, i, zone)
        if (name, rdtype) in seen:
            raise ValueError(f"rrsets[{i}]: {name} {rdtype} listed twice")
        seen.add((name, rdtype))
        if not PLAIN_NAME.match(name) or rdtype not in ("A", "AAAA", "TXT", "CNAME"):
            continue
        entry = found.setdefault(name, {"a": (), "aaaa": (), "ttl": 0, "txt": (), "cname": False, "txt_ttl": 0})
        if rdtype in ("A", "AAAA"):
            version = 4 if rdtype == "A" else 6
            try:
                addresses = tuple(sorted({str(ipaddress.ip_address(c)) for c in contents}))
            except ValueError:
                raise ValueError(f"rrsets[{i}]: {name} {rdtype} holds something that is not an address") from None
            if any(ipaddress.ip_address(a).version != version for a in addresses):
                raise ValueError(f"rrsets[{i}]: {name} {rdtype} holds an address of the other family")
            entry["a" if version == 4 else "aaaa"] = addresses
            entry["ttl"] = ttl
        elif rdtype == "TXT":
            entry["txt"], entry["txt_ttl"] = tuple(sorted(contents)), ttl
        else:
            entry["cname"] = True
    return {
        name: NameState(name, e["a"], e["aaaa"], e["ttl"], e["txt"], e["cname"], e["txt_ttl"])
        for name, e in found.items()
        if e["a"] or e["aaaa"] or e["txt"] or e["cname"]
    }


def _rrset(rrset: object, i: int, zone: str) -> tuple[str, str, int, tuple[str, ...]]:
    if not isinstance(rrset, dict):
        raise ValueError(f"rrsets[{i}] is not an object")
    name, rdtype, ttl, records = rrset.get("name"), rrset.get("type"), rrset.get("ttl"), rrset.get("records")
    if not isinstance(name, str) or not name.endswith(".") or len(name) > 255:
        raise ValueError(f"rrsets[{i}].name is not a DNS name with a final dot")
    name = name[:-1].lower()
    if name != zone and not name.endswith("." + zone):
        raise ValueError(f"rrsets[{i}].name {name[:80]!r} is outside zone {zone}")
    if not isinstance(rdtype, str) or not re.fullmatch(r"[A-Z0-9]{1,16}", rdtype):
        raise ValueError(f"rrsets[{i}].type is not a record type")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise ValueError(f"rrsets[{i}].ttl is not a TTL")
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise ValueError(f"rrsets[{i}].records is not a list of at most {MAX_RECORDS}")
    contents = []
    for j, record in enumerate(records):
        content = record.get("content") if isinstance(record, dict) else None
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            raise ValueError(f"rrsets[{i}].records[{j}].content is not a string of at most {MAX_CONTENT}")
        contents.append(content)
    return name, rdtype, ttl, tuple(contents)


def server_error(body: bytes) -> str:
    """The server's own words (``{"error": ...}`` or the text), printable and at most 200 characters."""
    try:
        doc = json.loads(body[:65536])
        text = doc.get("error") if isinstance(doc, dict) else None
    except (ValueError, RecursionError, UnicodeDecodeError):
        text = None
    if not isinstance(text, str):
        text = body[:400].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()[:200]
