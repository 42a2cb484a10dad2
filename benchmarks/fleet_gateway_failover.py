"""Losing a gateway's machine, with one Consul server and with three, side by side in one run (issue 23;
issue 14's fleet acceptance before it). benchmarks/gateway_failover.py measures gateway processes on
loopback.

Per layout, a fleet (tests/support/fleet.py) with two gateways (``gw`` 10.231.K.2, which also holds a
Consul server and the leading controller, and ``g2`` 10.231.K.3), BIND9 in a namespace of its own (zone
fleet.test, TSIG key in ``meshop/secrets/meshop-dns/``, TTL 5 s), 2 nodes and a 2-replica service
``web.fleet.test``; with three servers n1 and n2 hold the other two Consul servers and a standby
controller each (docs/install.md's layout for 3+ hosts), with one n1 holds the standby. Three clients
run in the fleet's client namespace (10.231.K.250), each a process of its own
(tests/support/dns_client.py): a stub resolver on BIND that caches each answer for its TTL, one GET
every ``--interval`` seconds on a new connection (1 s timeout), no retries:

* ``first``: sends to the answer's first address only (the worst simple client);
* ``next``: on a failed connection tries the answer's next address (as browsers do);
* ``pinned``: like ``first``, but puts gw first whenever the answer holds it (BIND rotates the order, so
  ``first`` may get lucky at its next resolution; ``pinned`` leaves gw only when the record does and
  its cached answer has expired).

Scenarios, each with gw's controller leading and every client's answer starting with gw:

1. gw powered off (link down, every process in its namespace SIGKILLed): seconds to a new controller
   leading, to DNS naming only g2, and per client the seconds until it is served again and its failed
   requests. Then gw boots: seconds to DNS naming both gateways again, and each client's failed
   requests from the power-on until it is served 20 times in a row (DNS must not name gw before its
   gateway serves: docs/dns.md, Health of a gateway).
2. gw and g2 powered off together: the same, DNS naming the nodes (direct mode; the node Caddies serve
   port 80).

``--g2`` adds, on the three-server fleet, g2's planned handover (SIGTERM, ``--drain`` TTL + 3 s) and
g2's power-off. As root (about 4 minutes):

    .venv/bin/python benchmarks/fleet_gateway_failover.py [--interval 0.05] [--nodes 2] [--g2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fleet import (  # noqa: E402
    DNS_ZONE,
    Fleet,
    keep_logs,
    parallel,
    scratch_fleet,
    service_doc,
    wait_for,
)

SERVICE = "web"
HOST = f"{SERVICE}.{DNS_ZONE}"
LABELS = ("first address", "next address", "pinned to gw")


# --- the client (runs inside the client namespace) --------------------------------------------------------


def client(server: str, name: str, out: Path, interval: float, try_next: bool, prefer: str) -> None:
    """One line per request: [start, end, ok, address used, the answer's first address] (monotonic clock,
    the same for every process on the machine)."""
    from tests.support.dns_client import DnsClient

    dns_client = DnsClient(server, name, try_next=try_next, prefer=prefer)
    with open(out, "a", buffering=1) as sink:
        while True:
            began = time.monotonic()
            ok, used, first = dns_client.request()
            sink.write(json.dumps([began, time.monotonic(), ok, used, first]) + "\n")
            time.sleep(interval)


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
        """Requests started in [t, until): how many, how many failed, the seconds from the first failed to
        the last failed one, the slowest, and ``served`` — seconds from ``t`` to the first success after
        the last failure (0: none failed; -1: still failing at ``until``)."""
        rows = [r for r in self.rows() if r[0] >= t and (until is None or r[0] < until)]
        failed = [r for r in rows if not r[2]]
        served = 0.0
        if failed:
            after = [r for r in rows if r[2] and r[0] > failed[-1][0]]
            served = after[0][1] - t if after else -1.0
        return {
            "requests": len(rows),
            "failed": len(failed),
            "seconds": failed[-1][1] - failed[0][0] if failed else 0.0,
            "slowest": max((r[1] - r[0] for r in rows), default=0.0),
            "served": served,
        }


def start_client(fleet: Fleet, work: Path, label: str, interval: float, try_next: bool, prefer: str = "") -> Results:
    out = work / f"client-{label}.jsonl"
    args = [sys.executable, __file__, "client", "--server", fleet.dns_host.addr, "--out", str(out)]
    args += ["--every", str(interval), "--prefer", prefer] + (["--next"] if try_next else [])
    fleet.spawn(fleet.client, f"client-{label}", args)
    return Results(out)


def on(clients: list[Results], address: str, ttl: int) -> None:
    """Until every client's current answer starts with ``address`` (BIND rotates the order; each client
    resolves again once per TTL)."""
    what = f"the clients' first address to be {address}"
    wait_for(lambda: all(c.first() == address for c in clients), 40 * ttl, what, 0.02)


LIMIT = 30.0  # seconds a layout gets to switch after a power-off before it counts as "never"
LAYOUTS = (1, 3)  # Consul servers


@dataclass
class Loss:
    """One power-off: seconds to a new controller leading and to the records wanted (None: not within
    ``LIMIT``), and each client kind's requests from the power-off on (``Results.since``)."""

    free: float | None  # the leader lock free (the dead leader's session invalidated)
    leader: float | None
    dns: float | None
    clients: list[dict[str, float]]
    back: float | None = None  # from power-on to DNS naming both gateways again
    booted: list[dict[str, float]] | None = None  # each client's requests from the power-on on


def lose(fleet: Fleet, clients: list[Results], victims: list[str], want: list[str]) -> Loss:
    """Power ``victims`` off at once; watch the leader and the records until both changed (or ``LIMIT``),
    then until every client is served again (or ``LIMIT`` more); power them on and wait for the fleet."""
    ttl, before, answer = fleet.dns_ttl, fleet.leader(), fleet.dns_query(HOST)
    print(f"{'+'.join(victims)} off: {before} leads, {HOST} -> {', '.join(answer)}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    parallel([lambda v=v: fleet.power_off(v) for v in victims])
    free_at = leader_at = dns_at = None
    must_move = before in {f"ctl-{v}" for v in victims}  # the leading controller died with its host
    while time.monotonic() - t0 < LIMIT and (dns_at is None or (must_move and leader_at is None)):
        now = time.monotonic() - t0
        with contextlib.suppress(Exception):
            holder = fleet.leader()
            if free_at is None and holder != before:
                free_at = now
            if leader_at is None and holder not in ("", before):
                leader_at = now
        with contextlib.suppress(Exception):
            if dns_at is None and fleet.dns_query(HOST) == want:
                dns_at = now
        time.sleep(0.02)
    if dns_at is not None:
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: all(c.healthy_since(t0 + dns_at + ttl) for c in clients), LIMIT, "clients served")
    print(f"  lock free {free_at}, leader {leader_at}, dns {dns_at}", file=sys.stderr, flush=True)
    lost = [c.since(t0, time.monotonic()) for c in clients]
    t1 = time.monotonic()
    parallel([lambda v=v: fleet.power_on(v) for v in victims])
    both = sorted(m.addr for m in fleet.gateway_members)
    back_at = None
    with contextlib.suppress(TimeoutError):  # DNS names a booted gateway only once it serves (its claim)
        wait_for(lambda: fleet.dns_query(HOST) == both, LIMIT, "both gateways in DNS again", 0.02)
        back_at = time.monotonic() - t1
        time.sleep(fleet.dns_ttl + 1)  # every client resolved again since, some to the booted gateway
        wait_for(lambda: all(c.healthy_since(t1) for c in clients), LIMIT, "clients served after the boot")
    print(f"  booted: both gateways in DNS after {back_at}", file=sys.stderr, flush=True)
    out = Loss(free_at, leader_at, dns_at, lost, back_at, [c.since(t1, time.monotonic()) for c in clients])
    ready(fleet)
    return out


def ready(fleet: Fleet) -> None:
    """Every host back: the voters, the nodes, the service, both gateways in DNS, gw's controller leading."""
    wait_for(fleet.control_plane_ready, 120, "the Consul servers", interval=0.25)
    wait_for(fleet.nodes_ready, 120, "every node Ready", interval=0.25)
    wait_for(lambda: fleet.service_ready(SERVICE, 2), 120, f"{SERVICE} Ready", interval=0.25)
    fleet.make_leader("gw")  # first: with one server, the records still show the moment before the outage
    both = sorted(m.addr for m in fleet.gateway_members)
    wait_for(lambda: fleet.dns_query(HOST) == both and fleet.leader() == "ctl-gw", 120, "both gateways in BIND")


def run_layout(servers: int, work: Path, args: argparse.Namespace) -> dict[str, Loss]:
    with scratch_fleet("mfgw-", nodes=args.nodes, gateways=2, dns=True, servers=servers) as fleet:
        try:
            return measure(fleet, servers, work, args)
        except BaseException:
            keep = Path(tempfile.mkdtemp(prefix=f"mfgw-failed-{servers}-", dir="/tmp"))
            keep_logs(fleet.root, keep)  # before the teardown removes the folder
            print(f"fleet logs kept in {keep}", file=sys.stderr)
            raise


def measure(fleet: Fleet, servers: int, work: Path, args: argparse.Namespace) -> dict[str, Loss]:
    gw, g2 = fleet.gateway, fleet.gateway2
    fleet.apply(service_doc(SERVICE, 2, HOST))
    ready(fleet)
    clients = [
        start_client(fleet, work, f"{servers}-first", args.interval, try_next=False),
        start_client(fleet, work, f"{servers}-next", args.interval, try_next=True),
        start_client(fleet, work, f"{servers}-pinned", args.interval, try_next=False, prefer=gw.addr),
    ]
    wait_for(lambda: all(c.healthy_since(0) for c in clients), 60, "every client served")
    out: dict[str, Loss] = {}
    on(clients, gw.addr, fleet.dns_ttl)
    out["gw"] = lose(fleet, clients, ["gw"], [g2.addr])
    nodes = sorted(fleet.node(c["node"]).addr for c in fleet.containers(SERVICE))
    on(clients, gw.addr, fleet.dns_ttl)
    out["both"] = lose(fleet, clients, ["gw", "g2"], nodes)
    if args.g2 and servers > 1:
        measure_g2(fleet, clients, args)
    return out


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
    parser.add_argument("--g2", action="store_true", help="also g2's planned handover and power-off (3 servers)")
    parser.add_argument("--layouts", default="1,3", help="Consul server counts to run, side by side (1 and/or 3)")
    args = parser.parse_args()
    if args.mode == "client":
        client(args.server, HOST, args.out, args.every, args.next, args.prefer)
        return 0
    work = Path(tempfile.mkdtemp(prefix="mfgw-clients-", dir="/tmp"))
    try:
        layouts = [int(n) for n in args.layouts.split(",") if n.strip() in ("1", "3")]
        results = {servers: run_layout(servers, work, args) for servers in layouts or LAYOUTS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    return 0


def seconds(value: float | None) -> str:
    return "never" if value is None or value < 0 else f"{value:.1f}"


def report(results: dict[int, dict[str, Loss]], args: argparse.Namespace) -> None:
    print("gateway-host failover on the fleet: gw (Consul server, leading controller, gateway 1) and g2 (gateway 2),")
    print(f"BIND in a namespace of its own, TTL 5 s, a request every {args.interval} s per client, no retries;")
    print(f'"never": not within {LIMIT:.0f} s of the power-off. Columns: the Consul layout.')
    head = "".join(f"{f'{n} server' + ('s' if n > 1 else ''):>22}" for n in results)
    for scenario, title, want in (
        ("gw", "gw powered off", "DNS names only g2"),
        ("both", "gw and g2 powered off together", "DNS names the nodes"),
    ):
        print(f"\n{title:52}{head}")
        rows = [
            ("the leader lock free (s)", lambda r: seconds(r.free)),
            ("a new controller leads (s)", lambda r: seconds(r.leader)),
            (f"{want} (s)", lambda r: seconds(r.dns)),
        ]
        for index, label in enumerate(LABELS):
            rows.append(
                (
                    f"{label} client: served again (s) / failed",
                    lambda r, i=index: f"{seconds(r.clients[i]['served'])} / {r.clients[i]['failed']:.0f}",
                )
            )
        rows.append(("booted: DNS names both gateways again (s)", lambda r: seconds(r.back)))
        for index, label in enumerate(LABELS):
            rows.append(
                (
                    f"{label} client: failed after the boot",
                    lambda r, i=index: f"{(r.booted or [{}])[i].get('failed', 0):.0f}",
                )
            )
        for name, cell in rows:
            print(f"  {name:50}" + "".join(f"{cell(results[n][scenario]):>22}" for n in results))


def measure_g2(fleet: Fleet, clients: list[Results], args: argparse.Namespace) -> None:
    """g2's planned handover (SIGTERM, --drain) and its power-off, as before issue 23."""
    ttl, gw, g2 = fleet.dns_ttl, fleet.gateway, fleet.gateway2
    both = sorted([gw.addr, g2.addr])
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


if __name__ == "__main__":
    sys.exit(main())
