"""RFC 2136 dynamic updates signed with TSIG (dnspython): the only module that imports ``dns``.

Reading is a TSIG-signed zone transfer (AXFR), so the writer sees the whole zone as the server holds
it, foreign records included. Each change is one UPDATE message, atomic on the server, with the
preconditions the planner relies on: the TXT set at the name's mark name (``_meshop-owner.<name>``) is
exactly as read (meshop's ownership mark, for an update or a withdraw), and a create requires the name
to have no A, AAAA or CNAME record. Only the name's A and AAAA sets and the one mark record are
written: a foreign record set at the name (TXT, MX, ...) is not part of any update, so it keeps its
records and TTL. Moving a legacy mark deletes that one TXT record from the name, conditional on the
name's TXT set as read. A server that answers anything but NOERROR raises ``DnsRefused`` naming the answer (NOTAUTH,
BADKEY, BADSIG, REFUSED, NXRRSET, ...). The TSIG secret lives only in the keyring; no message quotes it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.zone

from meshop.dns.plan import Change, NameState, ownership_text, split_families
from meshop.dns.provider import DnsError, DnsRefused

ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


@dataclass(frozen=True)
class Rfc2136Settings:
    host: str
    port: int
    zone: str  # e.g. example.com (final dot optional)
    key_name: str
    secret: str = field(repr=False)  # base64, as in BIND's key clause
    algorithm: str = "hmac-sha256"
    timeout: float = 5.0


class Rfc2136Provider:
    def __init__(self, settings: Rfc2136Settings) -> None:
        if settings.algorithm not in ALGORITHMS:
            raise DnsError(f"TSIG algorithm {settings.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        try:
            secret = base64.b64decode(settings.secret.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise DnsError(f"the TSIG secret of key {settings.key_name} is not base64") from None
        if not secret:
            raise DnsError(f"the TSIG secret of key {settings.key_name} is empty")
        self.settings = settings
        self.zone = dns.name.from_text(settings.zone.rstrip(".") + ".")
        self.key = dns.tsig.Key(settings.key_name.rstrip(".") + ".", secret, ALGORITHMS[settings.algorithm])
        self.key_label = settings.key_name.rstrip(".")
        self.where = f"{settings.host}:{settings.port} zone {self.zone.to_text(omit_final_dot=True)}"

    def read(self) -> dict[str, NameState]:
        s = self.settings
        try:
            zone = dns.zone.from_xfr(
                dns.query.xfr(
                    s.host, self.zone, port=s.port, keyring=self.key, timeout=s.timeout, lifetime=s.timeout * 4
                )
            )
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            raise DnsRefused(f"{self.where}: the server refused TSIG key {self.key_label} ({_why(exc)})") from None
        except dns.exception.FormError as exc:
            raise DnsRefused(f"{self.where}: zone transfer refused ({_why(exc)})") from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise DnsError(f"{self.where}: reading the zone failed: {_why(exc)}") from None
        states: dict[str, NameState] = {}
        for rel, node in zone.nodes.items():
            name = rel.derelativize(self.zone).to_text(omit_final_dot=True).lower()
            a: list[str] = []
            aaaa: list[str] = []
            txt: list[str] = []
            ttl = txt_ttl = 0
            cname = False
            for rdataset in node.rdatasets:
                if rdataset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    (a if rdataset.rdtype == dns.rdatatype.A else aaaa).extend(r.address for r in rdataset)
                    ttl = rdataset.ttl
                elif rdataset.rdtype == dns.rdatatype.TXT:
                    txt.extend(r.to_text() for r in rdataset)
                    txt_ttl = rdataset.ttl
                elif rdataset.rdtype == dns.rdatatype.CNAME:
                    cname = True
            if a or aaaa or txt or cname:
                v4, v6 = split_families(a + aaaa)
                states[name] = NameState(name, v4, v6, ttl, tuple(sorted(txt)), cname, txt_ttl)
        return states

    def apply(self, change: Change, owner: str) -> None:
        name, marks = self._name(change.name), self._name(change.mark)
        update = dns.update.UpdateMessage(self.zone, keyring=self.key)
        text = ownership_text(owner)
        mark = _txt(text)
        if change.txt:  # the mark name's TXT set as read (value-dependent: exactly these records)
            update.present(marks, *[_txt(t) for t in change.txt])
        else:
            update.absent(marks, "TXT")
        if change.legacy:
            update.present(name, *[_txt(t) for t in change.legacy])
        if change.kind == "create":
            for rdtype in ("A", "AAAA", "CNAME"):
                update.absent(name, rdtype)
        elif text not in change.txt and text not in change.legacy:
            # the planner never sends this (an owned name has its mark); refuse rather than guess
            raise DnsError(f"{change.kind} of {change.name} without meshop's mark as read; not sent")
        else:
            update.delete(name, "A")
            update.delete(name, "AAAA")
        if change.legacy:  # that one record only: the name's other TXT records and their TTL stay
            update.delete(name, mark)
        if change.kind == "withdraw":
            if text in change.txt:
                update.delete(marks, mark)
        else:
            v4, v6 = split_families(change.addresses)
            if text not in change.txt:
                update.add(marks, change.ttl, mark)
            for address in v4:
                update.add(name, change.ttl, "A", address)
            for address in v6:
                update.add(name, change.ttl, "AAAA", address)
        self._send(update, change)

    def _name(self, text: str) -> dns.name.Name:
        name = dns.name.from_text(text + ".")
        if not name.is_subdomain(self.zone):
            raise DnsError(f"{text} is outside zone {self.zone}; not sent")
        return name

    def _send(self, update: dns.update.UpdateMessage, change: Change) -> None:
        s = self.settings
        try:
            response = dns.query.tcp(update, s.host, port=s.port, timeout=s.timeout)
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            raise DnsRefused(
                f"{self.where}: the server refused TSIG key {self.key_label} ({_why(exc)}); {change.name} unchanged"
            ) from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise DnsError(f"{self.where}: update of {change.name} failed: {_why(exc)}") from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsRefused(f"{self.where}: update of {change.name} refused: {dns.rcode.to_text(rcode)}")


def _txt(text: str) -> dns.rdata.Rdata:
    """A TXT record from its presentation form (as ``read`` reports it, quotes included)."""
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
