"""Failed requests when a gateway dies, and during a planned handover, across the fleet's namespaces
(issue 14's fleet acceptance; benchmarks/gateway_failover.py measures the same on loopback).

A fleet (tests/support/fleet.py) with two gateways (``gw`` 10.231.K.2, which also holds the Consul server
and the leading controller, and ``g2`` 10.231.K.3, a Consul client and a gateway), BIND9 on the gateway
(zone fleet.test, TSIG key in ``meshop/secrets/meshop-dns/``, the Gateway document's dns section, TTL 5 s)
and a 2-replica service ``web.fleet.test``. Two clients run in the fleet's client namespace (10.231.K.250),
each a process of its own: a dnspython stub resolver on BIND that caches each answer for its TTL, one GET
every ``--interval`` seconds on a new connection (1 s timeout), no retries:

* ``first``: sends to the answer's first address only (the worst simple client);
* ``next``: on a failed connection tries the answer's next address (as browsers do);
* ``pinned``: like ``first``, but puts g2 first whenever the answer holds it (BIND rotates the order, so
  ``first`` may get lucky at its next resolution; ``pinned`` is the worst case: it leaves g2 only when
  the record does and its cached answer has expired).

1. planned handover: while both clients are on g2, SIGTERM to g2's gateway (``--drain`` TTL + 3 s: it leaves
   DNS at once, serves on, then stops). Figure: failed requests (goal 0).
2. failure: g2 started again; while both are on g2, g2 is powered off (link down, every process in its
   namespace SIGKILLed). Figure: seconds from the first to the last failed request (goal <= TTL + 5 s).

The victim is g2 because gw's namespace also holds the fleet's only Consul server: a power-off there is
the fleet suite's gateway-host test (nothing can update DNS without Consul). Prints figures; as root:

    .venv/bin/python benchmarks/fleet_gateway_failover.py [--interval 0.05] [--nodes 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fleet import DNS_ZONE, GATEWAY_PORT, Fleet, service_doc, session_fleet, wait_for  # noqa: E402

SERVICE = "web"
HOST = f"{SERVICE}.{DNS_ZONE}"
LABELS = ("first address", "next address", "pinned to g2")


# --- the client (runs inside the client namespace) --------------------------------------------------------


def client(server: str, name: str, out: Path, interval: float, try_next: bool, prefer: str) -> None:
    """One line per request: [start, end, ok, address used, the answer's first address] (monotonic clock,
    the same for every process on the machine)."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.cache = dns.resolver.Cache()  # keeps each answer for its TTL, as a caching stub does
    resolver.lifetime = 1.0
    with open(out, "a", buffering=1) as sink:
        while True:
            began = time.monotonic()
            ok, used, first = False, "", ""
            try:
                addresses = [r.address for r in resolver.resolve(name, "A")]
                addresses.sort(key=lambda a: a != prefer)  # stable: the answer's order otherwise
            except Exception:  # noqa: BLE001 - a failed resolution is a failed request
                addresses = []
            first = addresses[0] if addresses else ""
            for used in addresses if try_next else addresses[:1]:
                ok = get(used, name)
                if ok:
                    break
            sink.write(json.dumps([began, time.monotonic(), ok, used, first]) + "\n")
            time.sleep(interval)


def get(address: str, host: str) -> bool:
    conn = http.client.HTTPConnection(address, GATEWAY_PORT, timeout=1)
    try:
        conn.request("GET", "/", headers={"Host": host, "Connection": "close"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --- the benchmark -----------------------------------------------------------------------------------------


class Results:
    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[float, float, bool, str, str]]:
        out = []
        for line in self.path.read_text().splitlines() if self.path.exists() else []:
            try:
                began, ended, ok, used, first = json.loads(line)
            except ValueError:
                continue  # the line being written
            out.append((began, ended, bool(ok), used, first))
        return out

    def first(self) -> str:
        rows = self.rows()
        return rows[-1][4] if rows else ""

    def healthy_since(self, t: float, count: int = 20) -> bool:
        after = [r for r in self.rows() if r[0] >= t]
        return len(after) >= count and all(r[2] for r in after[-count:])

    def since(self, t: float, until: float | None = None) -> dict[str, float]:
        rows = [r for r in self.rows() if r[0] >= t and (until is None or r[0] < until)]
        failed = [r for r in rows if not r[2]]
        return {
            "requests": len(rows),
            "failed": len(failed),
            "seconds": failed[-1][1] - failed[0][0] if failed else 0.0,
            "slowest": max((r[1] - r[0] for r in rows), default=0.0),
        }


def start_client(fleet: Fleet, work: Path, label: str, interval: float, try_next: bool, prefer: str = "") -> Results:
    out = work / f"client-{label}.jsonl"
    args = [sys.executable, __file__, "client", "--server", fleet.gateway.addr, "--out", str(out)]
    args += ["--every", str(interval), "--prefer", prefer] + (["--next"] if try_next else [])
    fleet.spawn(fleet.client, f"client-{label}", args)
    return Results(out)


def on(clients: list[Results], address: str, ttl: int) -> None:
    """Until every client's current answer starts with ``address`` (BIND rotates the order; each client
    resolves again once per TTL)."""
    what = f"the clients' first address to be {address}"
    wait_for(lambda: all(c.first() == address for c in clients), 40 * ttl, what, 0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--every", type=float, default=0.05)
    c.add_argument("--next", action="store_true")
    c.add_argument("--prefer", default="")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    if args.mode == "client":
        client(args.server, HOST, args.out, args.every, args.next, args.prefer)
        return 0
    root = Path(tempfile.mkdtemp(prefix="mfgw-", dir="/tmp"))  # short: unix socket paths
    work = Path(tempfile.mkdtemp(prefix="mfgw-clients-", dir="/tmp"))
    try:
        with session_fleet(root, nodes=args.nodes, gateways=2, dns=True) as fleet:
            return measure(fleet, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not (root / "fleet.json").exists():
            shutil.rmtree(root, ignore_errors=True)


def measure(fleet: Fleet, work: Path, args: argparse.Namespace) -> int:
    ttl, gw, g2 = fleet.dns_ttl, fleet.gateway, fleet.gateway2
    both = sorted([gw.addr, g2.addr])
    fleet.apply(service_doc(SERVICE, 2, HOST))
    wait_for(lambda: fleet.service_ready(SERVICE, 2), 120, f"{SERVICE} Ready", interval=0.25)
    wait_for(lambda: fleet.dns_query(HOST) == both, 60, f"{HOST} -> both gateways in BIND")
    first = start_client(fleet, work, "first", args.interval, try_next=False)
    retrying = start_client(fleet, work, "next", args.interval, try_next=True)
    pinned = start_client(fleet, work, "pinned", args.interval, try_next=False, prefer=g2.addr)
    clients = [first, retrying, pinned]
    wait_for(lambda: all(c.healthy_since(0) for c in clients), 60, "every client served")

    # 1. planned handover: drain g2 while the client sends to it
    on(clients, g2.addr, ttl)
    t1 = time.monotonic()
    fleet.signal(g2, "gateway", signal.SIGTERM)
    wait_for(lambda: fleet.dns_query(HOST) == [gw.addr], 30, "g2 withdrawn (drain)", 0.05)
    drained_out = time.monotonic() - t1
    wait_for(lambda: not g2.running("gateway"), ttl + 30, "g2's gateway to stop after its drain")
    stopped = time.monotonic() - t1
    time.sleep(2)  # requests after the stop count too
    planned = [c.since(t1) for c in clients]

    # 2. failure: g2 back, then its power cut while the client sends to it
    fleet.start_gateway(g2)
    wait_for(lambda: fleet.dns_query(HOST) == both, 60, "g2 back in DNS")
    on(clients, g2.addr, ttl)
    t0 = time.monotonic()
    fleet.power_off("g2")
    cut = time.monotonic() - t0
    wait_for(lambda: fleet.dns_query(HOST) == [gw.addr], 60, "g2 withdrawn (power-off)", 0.05)
    withdrawn = time.monotonic() - t0
    wait_for(lambda: all(c.healthy_since(t0 + withdrawn + ttl) for c in clients), 60, "the clients served again")
    killed = [c.since(t0) for c in clients]

    print(f"fleet gateway failover: 2 gateways in namespaces, BIND9 on {fleet.dns_server}, TTL {ttl} s,")
    print(f"gateway checks every 1 s, a request every {args.interval} s per client, no retries")
    print(
        f"  planned handover (--drain {ttl + 3}): out of DNS after {drained_out:.1f} s, stopped after {stopped:.1f} s"
    )
    for label, r in zip(LABELS, planned, strict=True):
        print(f"    {label:14} client: failed requests {r['failed']:.0f} of {r['requests']:.0f}")
    print(f"  power-off of g2 ({cut:.1f} s to kill): out of DNS after {withdrawn:.1f} s; worst case for a")
    print(f"    client whose fresh answer still starts with g2: out of DNS + TTL = {withdrawn + ttl:.1f} s")
    for label, r in zip(LABELS, killed, strict=True):
        print(
            f"    {label:14} client: failed requests {r['failed']:.0f} of {r['requests']:.0f}, "
            f"failed-request seconds {r['seconds']:.1f} (goal <= TTL + 5 = {ttl + 5} s), "
            f"slowest request {r['slowest']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
