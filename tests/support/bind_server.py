"""A real BIND9 (Debian's ``named``) on a free loopback port: one zone open to TSIG-signed updates.

Its own folder holds named.conf, the zone file, the journal and the PID file; the process is started
by ``Process`` and stopped by its PID. ``update-policy`` grants the meshop key every name of the
zone, and the same key may transfer the zone (the provider reads by AXFR). A second key exists that
may do nothing, for the refused-key test; the test resolves through the server with dnspython.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.tsig

from tests.support.dns_zone import Records, zone_records
from tests.support.procs import Process, find_binary, free_port, wait_until

ZONE = "example.test"


class BindServer:
    def __init__(
        self, workdir: Path, zone: str = ZONE, key_name: str = "meshop-key", address: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.workdir = workdir
        self.address = address  # the fleet runs one on its gateway's address, port 53
        self.zone = zone
        self.key_name = key_name
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.other_key = "other-key"
        self.other_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.port = port or free_port()
        self.process: Process | None = None

    @property
    def server(self) -> str:
        return f"{self.address}:{self.port}"

    def write_config(self, extra_records: str = "") -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{self.zone}.zone").write_text(
            f"$ORIGIN {self.zone}.\n$TTL 300\n"
            f"@ IN SOA ns1.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60\n"
            f"@ IN NS ns1.{self.zone}.\nns1 IN A 127.0.0.1\n{extra_records}"
        )
        (d / "named.conf").write_text(
            f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {self.address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    notify no;
}};
controls {{ }};
key "{self.key_name}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};
key "{self.other_key}" {{ algorithm hmac-sha256; secret "{self.other_secret}"; }};
zone "{self.zone}" {{
    type primary;
    file "{d}/{self.zone}.zone";
    update-policy {{ grant {self.key_name} zonesub ANY; }};
    allow-transfer {{ key {self.key_name}; }};
}};
"""
        )

    def command(self) -> list[str]:
        return [find_binary("named", "MESHOP_NAMED_BIN"), "-g", "-c", str(self.workdir / "named.conf"), "-n", "1"]

    def start(self, extra_records: str = "") -> BindServer:
        if not (self.workdir / "named.conf").exists():
            self.write_config(extra_records)
        self.process = Process(self.command(), self.workdir / "named.log").start()
        try:  # over TCP: refused at once until named listens (free_port checked the TCP port only)
            wait_until(lambda: self.query("ns1", "A", timeout=1) == ["127.0.0.1"], timeout=20, what="named")
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}; named log:\n{self.process.log_tail(20)}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def query(self, name: str, rdtype: str, timeout: float = 2.0) -> list[str]:
        """The answer for ``name`` (relative to the zone, or ``@``) as sorted presentation strings."""
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"named is not running:\n{self.process.log_tail() if self.process else ''}")
        fqdn = f"{self.zone}." if name == "@" else f"{name}.{self.zone}."
        response = dns.query.tcp(dns.message.make_query(fqdn, rdtype), self.address, port=self.port, timeout=timeout)
        out = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                out.extend(r.to_text() for r in rrset)
        return sorted(out)

    def records(self) -> Records:
        """Every record set of the zone with its TTL (AXFR with the meshop key)."""
        key = dns.tsig.Key(self.key_name + ".", base64.b64decode(self.secret), dns.tsig.HMAC_SHA256)
        return zone_records(self.address, self.port, self.zone, key)

    def ttl(self, name: str, rdtype: str) -> int | None:
        fqdn = f"{name}.{self.zone}."
        response = dns.query.tcp(dns.message.make_query(fqdn, rdtype), self.address, port=self.port, timeout=2)
        return next((rrset.ttl for rrset in response.answer), None)
