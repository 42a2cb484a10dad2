"""A zone's foreign records, and what they look like on the server (rdata AND TTL), for every DNS provider test.

``FOREIGN`` are records a user made by hand, at the names meshop manages (``web``, ``api``: a TXT with
SPF, an MX, a verification TXT) and around them (an A and AAAA, a CNAME, an SPF at another name, a
mail host), each with a TTL meshop never uses. ``zone_records`` reads the whole zone by AXFR;
``foreign_part`` leaves out what meshop may write (A/AAAA at managed names, mark names, the SOA, whose
serial every update bumps), so a test compares everything else before and after.
"""

from __future__ import annotations

import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.zone

# (relative name, type, TTL, rdata): TTLs 3600/7200/900 differ from every TTL meshop is given in the tests
FOREIGN: tuple[tuple[str, str, int, str], ...] = (
    ("web", "TXT", 3600, '"v=spf1 ip4:192.0.2.0/24 -all"'),
    ("web", "TXT", 3600, '"google-site-verification=abc123"'),
    ("web", "MX", 7200, "10 mail.{zone}."),
    ("api", "TXT", 900, '"v=spf1 -all"'),
    ("foreign", "A", 3600, "192.0.2.9"),
    ("foreign", "AAAA", 3600, "2001:db8::9"),
    ("spf", "TXT", 3600, '"v=spf1 -all"'),
    ("alias", "CNAME", 3600, "foreign.{zone}."),
    ("mail", "A", 7200, "192.0.2.25"),
)

Records = dict[tuple[str, str], tuple[int, tuple[str, ...]]]


def zone_file_lines(zone: str) -> str:
    """FOREIGN as zone-file lines (``$ORIGIN`` the zone)."""
    return "".join(f"{n} {ttl} IN {t} {rdata.format(zone=zone)}\n" for n, t, ttl, rdata in FOREIGN)


def zone_records(address: str, port: int, zone: str, keyring: dns.tsig.Key | None = None) -> Records:
    """(relative name, type) -> (TTL, sorted rdata) of every record set of ``zone``, by AXFR."""
    origin = dns.name.from_text(zone.rstrip(".") + ".")
    got = dns.zone.from_xfr(dns.query.xfr(address, origin, port=port, keyring=keyring, timeout=5, lifetime=20))
    out: Records = {}
    for rel, node in got.nodes.items():
        for rdataset in node.rdatasets:
            rdtype = dns.rdatatype.to_text(rdataset.rdtype)
            rdatas = tuple(sorted(r.to_text(origin=origin, relativize=False) for r in rdataset))
            out[(rel.to_text().lower(), rdtype)] = (rdataset.ttl, rdatas)
    return out


def foreign_part(records: Records, managed: tuple[str, ...] = ("web", "api")) -> Records:
    """``records`` without what meshop may write: A/AAAA at ``managed`` names, mark names, the SOA."""
    return {
        (name, rdtype): value
        for (name, rdtype), value in records.items()
        if rdtype != "SOA"
        and not name.startswith("_meshop-owner.")
        and not (name in managed and rdtype in ("A", "AAAA"))
    }


def expected_foreign(zone: str) -> Records:
    """What ``foreign_part`` must be (the NS and ns1 of the test servers included)."""
    out: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for name, rdtype, ttl, rdata in FOREIGN:
        out.setdefault((name, rdtype), (ttl, []))[1].append(rdata.format(zone=zone))
    return {key: (ttl, tuple(sorted(rdatas))) for key, (ttl, rdatas) in out.items()}
