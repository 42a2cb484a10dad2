"""What one DNS change costs with each provider, as the zone grows (issue 23, item 4).

A real BIND9 (RFC 2136: AXFR read, one conditional UPDATE per change) and a real pdns_server (sqlite3
backend, HTTP API: GET read, then per change two small GETs of the name's and its mark name's record
sets — the API has no preconditions, so the provider checks them before each PATCH — and one PATCH),
each holding the foreign records of tests/support/dns_zone.py plus ``--sizes`` filler names. For each:
the time of a read; of a pass that moves ``--names`` names from one gateway to another (read, plan,
one apply per name: a failover); medians over ``--reps`` passes. Starts its own servers on free
loopback ports and stops them by PID. Prints figures, not a pass/fail.

    .venv/bin/python benchmarks/dns_providers.py [--sizes 10,1000,5000] [--names 20] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.dns.plan import plan  # noqa: E402
from meshop.dns.powerdns import PowerDnsProvider, PowerDnsSettings  # noqa: E402
from meshop.dns.provider import Provider  # noqa: E402
from meshop.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings  # noqa: E402
from tests.support.bind_server import BindServer  # noqa: E402
from tests.support.dns_zone import zone_file_lines  # noqa: E402
from tests.support.pdns_server import PdnsServer  # noqa: E402

OWNER = "bench"


def filler(size: int) -> list[tuple[str, str]]:
    return [(f"filler{i}", f"198.51.100.{i % 250 + 1}") for i in range(size)]


def measure(p: Provider, zone: str, names: int, reps: int) -> tuple[float, float]:
    """(seconds per read, seconds per failover pass of ``names`` names), medians."""
    wanted = [f"app{i}.{zone}" for i in range(names)]
    current = p.read()
    for change in plan({n: ["192.0.2.1"] for n in wanted}, current, OWNER, 60).changes:  # create them first
        p.apply(change, OWNER)
    reads: list[float] = []
    passes: list[float] = []
    for rep in range(reps):
        start = time.monotonic()
        p.read()
        reads.append(time.monotonic() - start)
        target = "192.0.2.2" if rep % 2 == 0 else "192.0.2.1"
        start = time.monotonic()
        result = plan({n: [target] for n in wanted}, p.read(), OWNER, 60)
        for change in result.changes:
            p.apply(change, OWNER)
        passes.append(time.monotonic() - start)
        assert len(result.changes) == names, result
    return statistics.median(reads), statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,5000")
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    moves = f"pass ({args.names} moves)"
    print(f"{'zone names':>10}  {'provider':<9} {'read':>9} {moves:>18} {'per change':>11}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="meshop-dnsbench-") as tmp:
            zone = "example.test"
            extra = zone_file_lines(zone) + "".join(f"{n} 300 IN A {ip}\n" for n, ip in filler(size))
            bind = BindServer(Path(tmp) / "named").start(extra_records=extra)
            pdns = PdnsServer(Path(tmp) / "pdns").start()
            try:
                rrsets = [
                    {"name": f"{n}.{zone}.", "type": "A", "ttl": 300, "changetype": "REPLACE",
                     "records": [{"content": ip}]}
                    for n, ip in filler(size)
                ]  # fmt: skip
                pdns.api("PATCH", f"/api/v1/servers/localhost/zones/{zone}.", {"rrsets": rrsets})
                providers: list[tuple[str, Provider]] = [
                    (
                        "rfc2136",
                        Rfc2136Provider(Rfc2136Settings("127.0.0.1", bind.port, zone, bind.key_name, bind.secret)),
                    ),
                    ("powerdns", PowerDnsProvider(PowerDnsSettings(pdns.api_url, zone, pdns.api_key, timeout=30))),
                ]
                for label, provider in providers:
                    read, one_pass = measure(provider, zone, args.names, args.reps)
                    per = one_pass / args.names
                    print(
                        f"{size:>10}  {label:<9} {read * 1000:>7.1f}ms {one_pass * 1000:>16.1f}ms {per * 1000:>9.1f}ms"
                    )
            finally:
                bind.stop()
                pdns.stop()


if __name__ == "__main__":
    main()
