"""A real PowerDNS Authoritative server (Debian's ``pdns_server``, sqlite3 backend) on free loopback ports.

Its own folder holds an empty pdns.conf, the sqlite database (made from the package's schema), the
control socket and the log; every setting is on the command line. DNS on one free port (AXFR allowed
from 127.0.0.1 only, for the tests' reads), the HTTP API (``api=yes``, a random API key) on another,
both on 127.0.0.1. The process is started by ``Process`` and stopped by its PID; the zone is made
through the API, with the foreign records of tests/support/dns_zone.py.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.dns_zone import FOREIGN, Records, zone_records
from tests.support.procs import Process, find_binary, free_port, wait_until

ZONE = "example.test"
SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")


class PdnsServer:
    def __init__(self, workdir: Path, zone: str = ZONE) -> None:
        self.workdir = workdir
        self.zone = zone
        self.api_key = secrets.token_urlsafe(24)
        self.dns_port = free_port()
        self.api_port = free_port()
        self.process: Process | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def command(self) -> list[str]:
        d = self.workdir
        return [
            find_binary("pdns_server", "MESHOP_PDNS_BIN"),
            f"--config-dir={d}",
            f"--socket-dir={d}",
            "--daemon=no",
            "--guardian=no",
            "--disable-syslog",
            "--write-pid=no",
            "--launch=gsqlite3",
            f"--gsqlite3-database={d}/pdns.sqlite3",
            "--local-address=127.0.0.1",
            f"--local-port={self.dns_port}",
            "--api=yes",
            f"--api-key={self.api_key}",
            "--webserver=yes",
            "--webserver-address=127.0.0.1",
            f"--webserver-port={self.api_port}",
            "--webserver-allow-from=127.0.0.1",
            "--disable-axfr=no",
            "--allow-axfr-ips=127.0.0.1",
            "--cache-ttl=0",
            "--negquery-cache-ttl=0",
            "--query-cache-ttl=0",
            "--zone-cache-refresh-interval=0",
            "--security-poll-suffix=",  # no query to the outside world for its security status
            "--loglevel=4",
        ]

    def start(self, foreign: bool = True) -> PdnsServer:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "pdns.conf").write_text("# every setting is on the command line (tests/support/pdns_server.py)\n")
        with sqlite3.connect(d / "pdns.sqlite3") as db:
            db.executescript(SCHEMA.read_text())
        self.process = Process(self.command(), d / "pdns.log").start()
        try:
            wait_until(self._api_answers, timeout=20, what="pdns_server's API")
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}; pdns log:\n{self.process.log_tail(20)}") from None
        self.create_zone(foreign)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def _api_answers(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"pdns_server exited:\n{self.process.log_tail(20)}")
        try:
            self.api("GET", "/api/v1/servers/localhost")
        except (urllib.error.URLError, ConnectionError, OSError):
            return False
        return True

    def api(self, method: str, path: str, body: object | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("X-API-Key", self.api_key)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else None

    def create_zone(self, foreign: bool = True) -> None:
        z = f"{self.zone}."
        rrsets: dict[tuple[str, str], dict] = {}
        for name, rdtype, ttl, rdata in FOREIGN if foreign else ():
            rrset = rrsets.setdefault(
                (name, rdtype), {"name": f"{name}.{z}", "type": rdtype, "ttl": ttl, "records": []}
            )
            rrset["records"].append({"content": rdata.format(zone=self.zone), "disabled": False})
        rrsets[("ns1", "A")] = {"name": f"ns1.{z}", "type": "A", "ttl": 300, "records": [{"content": "127.0.0.1"}]}
        self.api(
            "POST",
            "/api/v1/servers/localhost/zones",
            {"name": z, "kind": "Native", "nameservers": [f"ns1.{z}"], "rrsets": list(rrsets.values())},
        )

    def records(self) -> Records:
        """Every record set of the zone with its TTL, by AXFR (allowed from 127.0.0.1)."""
        return zone_records("127.0.0.1", self.dns_port, self.zone)
