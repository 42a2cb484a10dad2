"""Seconds of failed requests when a gateway dies, and during a planned handover (issue 14).

Two real ``meshop gateway run`` (TLS off, each on its own loopback address, ``--advertise-addr``,
``--check-interval``), a real BIND9 zone updated by the DNS writer (TSIG, a held leader lock on a real
Consul), one backend. A client resolves ``web.<zone>`` through that BIND, keeps the answer for its TTL
(as a caching resolver does), sends a GET to the first address every ``--interval`` seconds (a new
connection each, 1 s timeout) and never tries a second address: the worst simple client. A second
client does the same but tries the answer's next address when a connection fails (as browsers do).

1. failure: the primary gateway (the client's first address) gets SIGKILL. Figure: seconds from the
   first to the last failed request, and their count (goal: <= TTL + 5 s).
2. planned handover: the primary, started again, is stopped with SIGTERM and ``--drain`` TTL + 3: it
   leaves DNS first and keeps serving. Figure: failed requests (goal: 0).

Starts its own Consul, BIND and gateways and stops them by PID. Prints figures, not a pass/fail.

    .venv/bin/python benchmarks/gateway_failover.py [--ttl 5] [--check-interval 1] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.services import Services  # noqa: E402
from meshop.consul.sessions import Sessions  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from meshop.model import keys  # noqa: E402
from meshop.model.records import RouteRecord, Upstream, dumps  # noqa: E402
from meshop.operator.dns import DnsWriter  # noqa: E402
from tests.support.bind_server import BindServer  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.procs import Process, free_port, kill_pidfile, wait_until  # noqa: E402

G1, G2, NODE = "127.0.0.41", "127.0.0.42", "127.0.1.1"


class Backend:
    def __init__(self) -> None:
        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer((NODE, self.port), Hello)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Client(threading.Thread):
    """Resolve through BIND (cached for the answer's TTL), GET the first address, record every result."""

    def __init__(self, bind: BindServer, name: str, port: int, interval: float, retry: bool = False) -> None:
        super().__init__(daemon=True)
        self.bind, self.name, self.port, self.interval = bind, name, port, interval
        self.retry = retry  # on a failed connection try the answer's next address (as browsers do)
        self.results: list[tuple[float, bool, str]] = []
        self.stopping = threading.Event()
        self._cached: tuple[float, list[str]] = (0.0, [])

    def resolve(self) -> list[str]:
        expires, addresses = self._cached
        if time.monotonic() < expires and addresses:
            return addresses
        query = dns.message.make_query(f"{self.name}.{self.bind.zone}.", "A")
        answer = dns.query.udp(query, "127.0.0.1", port=self.bind.port, timeout=1).answer
        addresses = sorted(r.to_text() for rrset in answer for r in rrset)
        ttl = min((rrset.ttl for rrset in answer), default=0)
        self._cached = (time.monotonic() + ttl, addresses)
        return addresses

    def run(self) -> None:
        while not self.stopping.is_set():
            ok, where = False, ""
            try:
                addresses = self.resolve()
            except Exception:  # noqa: BLE001 - every failure counts
                addresses = []
            for where in addresses if self.retry else addresses[:1]:
                ok = self.get(where)
                if ok:
                    break
            self.results.append((time.monotonic(), ok, where))
            self.stopping.wait(self.interval)

    def get(self, address: str) -> bool:
        try:
            conn = http.client.HTTPConnection(address, self.port, timeout=1)
            conn.request("GET", "/", headers={"Host": f"{self.name}.{self.bind.zone}"})
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except Exception:  # noqa: BLE001 - every failure counts
            return False

    def failures_since(self, t0: float) -> tuple[int, float]:
        failed = [t for t, ok, _ in self.results if t >= t0 and not ok]
        return len(failed), (failed[-1] - failed[0] + self.interval if failed else 0.0)


def gateway(consul: ConsulServer, prefix: str, work: Path, gid: str, address: str, port: int, args) -> Process:
    command = [sys.executable, "-m", "meshop", "--consul-addr", consul.addr, "--prefix", prefix, "gateway", "run"]
    command += ["--caddy-dir", str(work / gid), "--id", gid, "--bind", address, "--advertise-addr", address]
    command += ["--http-port", str(port), "--https-port", str(free_port()), "--tls", "off"]
    command += ["--metrics-addr", "127.0.0.1:0", "--check-interval", str(args.check_interval)]
    command += ["--drain", str(args.ttl + 3), "--local-cluster"]
    return Process(command, work / f"{gid}.log", env={"PYTHONUNBUFFERED": "1"}).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ttl", type=int, default=5)
    parser.add_argument("--check-interval", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshop-failover-"))
    consul = ConsulServer(work / "consul").start()
    bind = BindServer(work / "named").start()
    backend = Backend()
    prefix = f"bench-{secrets.token_hex(3)}"
    store = KVStore(ConsulConfig.from_env({}, addr=consul.addr, prefix=prefix, timeout=5.0))
    processes: list[Process] = []
    writer = None
    try:
        store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.secret)
        store.put(
            keys.DESIRED_GATEWAY,
            f"""apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {{name: bench}}
spec:
  domains: [{bind.zone}]
  tls: {{mode: "off"}}
  dns: {{provider: rfc2136, server: "127.0.0.1:{bind.port}", zone: {bind.zone}, keyName: {bind.key_name},
        keySecretKey: {prefix}/secrets/meshop-dns/tsig, ttl: {args.ttl}}}
""",
        )
        host = f"web.{bind.zone}"
        store.put(keys.route(host), dumps(RouteRecord(host, "web", "/", (Upstream("n1", NODE, backend.port, True),))))
        sessions = Sessions(store)
        lock = sessions.acquire(keys.LEADER, sessions.create("bench"), "{}")
        writer = DnsWriter(store, Services(store.config, store.client), lambda: lock, local_cluster=True, wait="5s")
        writer.start()
        port = free_port()
        g1 = gateway(consul, prefix, work, "g1", G1, port, args)
        g2 = gateway(consul, prefix, work, "g2", G2, port, args)
        processes += [g1, g2]

        def web() -> list[str]:
            return bind.query("web", "A")

        wait_until(lambda: web() == [G1, G2], 60, what="both gateways in DNS")
        client = Client(bind, "web", port, args.interval)
        retrying = Client(bind, "web", port, args.interval, retry=True)
        client.start()
        retrying.start()
        wait_until(lambda: len(client.results) > 20 and all(ok for _, ok, _ in client.results[-10:]), 30, what="ok")

        t0 = time.monotonic()
        kill_pidfile(work / "g1" / "caddy.pid")  # the gateway machine dies: its Caddy first, then meshop
        g1.kill()
        wait_until(lambda: web() == [G2], 30, what="g1 withdrawn")
        withdrawn = time.monotonic() - t0
        time.sleep(args.ttl + 2)  # the client's cache expires; then it must be served again
        wait_until(lambda: all(ok for _, ok, _ in client.results[-10:]), 30, what="client served again")
        failed, seconds = client.failures_since(t0)
        retry_failed, retry_seconds = retrying.failures_since(t0)

        g1 = gateway(consul, prefix, work, "g1", G1, port, args)
        processes.append(g1)
        wait_until(lambda: web() == [G1, G2], 60, what="g1 back in DNS")
        time.sleep(args.ttl + 1)  # the client moves back to g1 (its first address)
        t1 = time.monotonic()
        g1.signal(signal.SIGTERM)
        g1.popen.wait(args.ttl + 30)
        time.sleep(1.0)
        planned_failed, _ = client.failures_since(t1)
        served_by_g1 = sum(1 for t, ok, where in client.results if t >= t1 - 0.5 and t < t1 and where == G1)
        retry_planned, _ = retrying.failures_since(t1)
        for c in (client, retrying):
            c.stopping.set()
            c.join(5)

        print(f"gateway failover (TTL {args.ttl} s, check interval {args.check_interval} s, ", end="")
        print(f"request every {args.interval} s)")
        print(
            f"  killed primary: withdrawn from DNS after {withdrawn:.1f} s; failed requests {failed}, "
            f"failed-request seconds {seconds:.1f} (goal <= TTL + 5 = {args.ttl + 5} s)"
        )
        print(
            f"  killed primary, a client that tries the next address: failed requests {retry_failed}, "
            f"failed-request seconds {retry_seconds:.1f}"
        )
        print(
            f"  planned handover (--drain {args.ttl + 3} s): failed requests {planned_failed} "
            f"(client on g1 before the stop: {served_by_g1 > 0}); retrying client: {retry_planned}"
        )
    finally:
        if writer is not None:
            writer.stop()
        for process in processes:
            process.stop()
        for gid in ("g1", "g2"):
            kill_pidfile(work / gid / "caddy.pid")
        backend.stop()
        bind.stop()
        consul.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
