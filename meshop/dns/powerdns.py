"""PowerDNS Authoritative's HTTP API: the only module that talks to it (stdlib ``http.client``).

Reading is ``GET /api/v1/servers/<server>/zones/<zone>`` (every record set with its TTL, foreign ones
included), parsed as hostile input (``powerdns_zone.parse_zone``: bounded, every field checked). Each
change is ONE ``PATCH`` of the zone, atomic on the server (one backend transaction), with rrsets of
changetype ``REPLACE``/``DELETE`` for exactly what meshop owns: the A and AAAA sets of the name and the
TXT set of its mark name (and, to move a legacy mark, the name's TXT set minus that one record, with
its TTL as read). No other record set is ever named in a request, so foreign records keep their
records and TTL.

The API has no preconditions (RFC 2136's prerequisites): right before the PATCH the name's and its
mark name's record sets are read again (two small GETs with ``rrset_name``) and the change is sent
only if they are still as the plan read them; otherwise ``DnsRefused`` ("changed since read"). That
narrows the window a hand-made record could lose in to one GET/PATCH round trip; it cannot close it.

The API key is sent only in ``X-API-Key`` to the configured URL: no proxy from the environment, no
redirect followed (a 3xx is an error), TLS verified for ``https``. No message quotes it; a server
answer that echoes it is redacted.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field

from meshop.dns.plan import Change, NameState, ownership_text, split_families
from meshop.dns.powerdns_zone import MAX_RESPONSE, parse_zone, server_error
from meshop.dns.provider import DnsError, DnsRefused


@dataclass(frozen=True)
class PowerDnsSettings:
    api_url: str  # http(s)://host[:port][/base], the webserver of pdns_server
    zone: str  # e.g. example.com (final dot optional)
    api_key: str = field(repr=False)
    server_id: str = "localhost"
    timeout: float = 5.0


class PowerDnsProvider:
    def __init__(self, settings: PowerDnsSettings) -> None:
        url = urllib.parse.urlsplit(settings.api_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.username or url.query or url.fragment:
            raise DnsError(f"spec.dns.apiUrl {settings.api_url!r} is not http(s)://host[:port][/path]")
        if not settings.api_key.strip() or any(c in settings.api_key for c in "\r\n"):
            raise DnsError("the PowerDNS API key is empty or not one line")
        self.settings = settings
        self.url = url
        self.zone = settings.zone.rstrip(".").lower()
        zone_id = urllib.parse.quote(self.zone + ".", safe="")
        server_id = urllib.parse.quote(settings.server_id, safe="")
        self.path = f"{url.path.rstrip('/')}/api/v1/servers/{server_id}/zones/{zone_id}"
        self.where = f"{url.scheme}://{url.netloc} zone {self.zone}"

    def read(self) -> dict[str, NameState]:
        return self._read("")

    def _read(self, name: str) -> dict[str, NameState]:
        """The zone, or only ``name``'s record sets (``rrset_name``, PowerDNS 4.7+; a server that ignores
        the filter answers the whole zone, which holds the same truth about ``name``)."""
        query = f"?rrset_name={urllib.parse.quote(name + '.', safe='')}" if name else ""
        status, body = self._request("GET", None, "reading the zone", query)
        if status != 200:
            raise self._refused(status, body, "reading the zone")
        try:
            return parse_zone(body, self.zone)
        except ValueError as exc:
            raise DnsError(f"{self.where}: the server's answer is not a zone meshop can use: {exc}") from None

    def apply(self, change: Change, owner: str) -> None:
        for name in (change.name, change.mark):
            if name != self.zone and not name.endswith("." + self.zone):
                raise DnsError(f"{name} is outside zone {self.zone}; not sent")
        self._still_as_read(change, owner)
        rrsets = self._rrsets(change, owner)
        status, body = self._request("PATCH", {"rrsets": rrsets}, f"update of {change.name}")
        if status not in (200, 204):
            raise self._refused(status, body, f"update of {change.name}")

    # --- the request -------------------------------------------------------------------------------

    def _still_as_read(self, change: Change, owner: str) -> None:
        state = self._read(change.name).get(change.name, NameState(change.name))
        marks = self._read(change.mark).get(change.mark, NameState(change.mark)).txt
        text = ownership_text(owner)
        moved = marks != tuple(sorted(change.txt))
        if change.kind == "create":
            moved = moved or not state.empty
        elif text not in change.txt and text not in change.legacy:
            raise DnsError(f"{change.kind} of {change.name} without meshop's mark as read; not sent")
        if change.legacy and state.txt != tuple(sorted(change.legacy)):
            moved = True
        if moved:
            raise DnsRefused(
                f"{self.where}: {change.name} changed since it was read; not sent (the next pass re-reads)"
            )

    def _rrsets(self, change: Change, owner: str) -> list[dict]:
        text = ownership_text(owner)
        out: list[dict] = []
        v4, v6 = split_families(change.addresses)
        for rdtype, addresses in (("A", v4), ("AAAA", v6)):
            if addresses:
                out.append(_replace(change.name, rdtype, change.ttl, addresses))
            elif change.kind != "create":
                out.append(_delete(change.name, rdtype))
        if change.kind == "withdraw":
            rest = tuple(t for t in change.txt if t != text)
            out.append(_replace(change.mark, "TXT", change.ttl, rest) if rest else _delete(change.mark, "TXT"))
        elif text not in change.txt:
            out.append(_replace(change.mark, "TXT", change.ttl, (*change.txt, text)))
        if change.legacy:  # that one record leaves the name's TXT set; the others keep their TTL
            rest = tuple(t for t in change.legacy if t != text)
            out.append(_replace(change.name, "TXT", change.legacy_ttl, rest) if rest else _delete(change.name, "TXT"))
        return out

    def _request(self, method: str, body: object | None, what: str, query: str = "") -> tuple[int, bytes]:
        s = self.settings
        host, port = self.url.hostname or "", self.url.port
        try:
            if self.url.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=s.timeout)
            try:
                payload = json.dumps(body).encode() if body is not None else None
                headers = {"X-API-Key": s.api_key, "Accept": "application/json"}
                if payload is not None:
                    headers["Content-Type"] = "application/json"
                conn.request(method, self.path + query, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read(MAX_RESPONSE + 1)
                if len(data) > MAX_RESPONSE:
                    raise DnsError(f"{self.where}: {what}: the answer is larger than {MAX_RESPONSE} bytes; not used")
                return response.status, data
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            reason = str(exc).replace(s.api_key, "***")[:200] or type(exc).__name__
            raise DnsError(f"{self.where}: {what} failed: {type(exc).__name__}: {reason}") from None

    def _refused(self, status: int, body: bytes, what: str) -> DnsError:
        said = server_error(body).replace(self.settings.api_key, "***")
        said = f": {said}" if said else ""
        if status in (401, 403):
            return DnsRefused(f"{self.where}: {what} refused: the server rejected the API key (HTTP {status}){said}")
        if status == 404:
            return DnsRefused(
                f"{self.where}: {what} refused: zone {self.zone} (server {self.settings.server_id}) not found"
                f" (HTTP 404){said}"
            )
        if status == 422:
            return DnsRefused(f"{self.where}: {what} refused by the server (HTTP 422){said}")
        if 300 <= status < 400:
            return DnsError(f"{self.where}: {what}: the server answered a redirect (HTTP {status}); not followed")
        return DnsError(f"{self.where}: {what} failed: HTTP {status}{said}")


def _replace(name: str, rdtype: str, ttl: int, contents: tuple[str, ...]) -> dict:
    records = [{"content": c, "disabled": False} for c in sorted(contents)]
    return {"name": name + ".", "type": rdtype, "ttl": ttl, "changetype": "REPLACE", "records": records}


def _delete(name: str, rdtype: str) -> dict:
    return {"name": name + ".", "type": rdtype, "changetype": "DELETE"}
