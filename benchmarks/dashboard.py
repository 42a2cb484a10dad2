"""How fast the dashboard shows a change, and what a big fleet costs it to render.

    .venv/bin/python benchmarks/dashboard.py [--services 200] [--nodes 20] [--events 1000] [--streams 50] [--repeat 20]

Starts its own Consul (stopped by PID at the end) and a dashboard on loopback, fills the KV with
``--services`` Service documents, ``--nodes`` node records and ``--events`` events, then prints:

* render: wall time of ``GET /fragment/overview`` (what a page fetches on each change), median and max;
* change → event: from a KV write (a Node document, as a cordon writes it) until an open ``/stream``
  receives ``event: changed`` (Consul blocking query → watch → server-sent event);
* change → fragment: the same, plus fetching the fragment that shows the change (what a browser does,
  less the DOM swap);
* fan-out: with ``--streams`` streams open, from one write until every one of them got the event;
* render with usage charts: after ``--usage-rounds`` rounds of ``usage/<node>`` records (every service's
  two replicas spread over the nodes; each round is what the agents write every 10 s at most), the
  overview again, now with the usage tables and two sparklines per node and per service.

No peer is measured: Portainer and the others read Docker directly, not a KV store.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.events import EventLog  # noqa: E402
from meshop.consul.store import KVStore, TxnOp  # noqa: E402
from meshop.dashboard.server import Dashboard, Settings  # noqa: E402
from meshop.model import keys  # noqa: E402
from meshop.model.records import ReplicaUsage, UsageRecord, dumps  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.1f} ms   max {max(samples) * 1e3:7.1f} ms"


def fill(store: KVStore, services: int, nodes: int, events: int) -> None:
    ops = []
    for i in range(services):
        doc = {
            "apiVersion": "meshop.io/v1alpha1",
            "kind": "Service",
            "metadata": {"name": f"svc{i}"},
            "spec": {"image": f"registry.example/app{i}:1", "replicas": 2},
        }
        ops.append(TxnOp.set(keys.desired_service(f"svc{i}"), json.dumps(doc)))
    for i in range(nodes):
        record = {"name": f"n{i}", "address": f"10.0.0.{i + 1}", "labels": {"zone": f"z{i % 3}"}}
        ops.append(TxnOp.set(keys.node(f"n{i}"), json.dumps(record)))
    for start in range(0, len(ops), 64):
        store.transact(ops[start : start + 64])
    log = EventLog(store, "bench", max_events=events + 10)
    batch = [log.prepare("Scheduled", f"service/svc{i % max(services, 1)}", f"event {i}") for i in range(events)]
    for start in range(0, len(batch), 64):
        store.transact(batch[start : start + 64])


def write_usage(store: KVStore, services: int, nodes: int, sampled_at: float, round_: int) -> None:
    """One round of usage records: every service's two replicas spread over the nodes."""
    per_node: dict[int, list[ReplicaUsage]] = {i: [] for i in range(nodes)}
    for s in range(services):
        for replica in range(2):
            cpu = float((s * 7 + replica * 13 + round_ * 5) % 90)
            usage = ReplicaUsage(f"svc{s}", replica, cpu=cpu, memory=int(20 + cpu) * 2**20, memory_limit=256 * 2**20)
            per_node[(s * 2 + replica) % nodes].append(usage)
    ops = []
    for i, replicas in per_node.items():
        record = UsageRecord(
            node=f"n{i}",
            sampled_at=sampled_at,
            interval=10.0,
            refresh=30.0,
            cpu=sum(r.cpu for r in replicas),
            cpus=4,
            memory=sum(r.memory for r in replicas),
            memory_total=8 * 2**30,
            replicas=tuple(replicas),
        )
        ops.append(TxnOp.set(keys.usage(f"n{i}"), dumps(record)))
    for start in range(0, len(ops), 64):
        store.transact(ops[start : start + 64])


class Stream:
    """One open ``/stream``; ``wait_changed`` returns when the next ``event: changed`` line arrives."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.reader = self.sock.makefile("rb")
        while self.reader.readline() not in (b"\r\n", b""):  # headers
            pass
        self.reader.readline()  # retry:
        self.reader.readline()

    def wait_changed(self) -> None:
        while True:
            line = self.reader.readline()
            if not line:
                raise RuntimeError("stream closed")
            if line.startswith(b"event: changed"):
                self.reader.readline()
                self.reader.readline()
                return

    def close(self) -> None:
        self.sock.close()


def get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--usage-rounds", type=int, default=60)
    args = parser.parse_args()
    server = ConsulServer(Path(tempfile.mkdtemp(prefix="dash-bench-")))
    server.start()
    try:
        run(server, args)
    finally:
        server.stop()


def run(server: ConsulServer, args: argparse.Namespace) -> None:
    config = ConsulConfig.from_env({}, addr=server.addr, prefix="bench", timeout=10.0)
    store = KVStore(config)
    fill(store, args.services, args.nodes, args.events)
    dash = Dashboard(config, Settings(listen="127.0.0.1:0")).start()
    try:
        port = dash.port
        get(port, "/fragment/overview")  # warm up
        render = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            size = len(get(port, "/fragment/overview"))
            render.append(time.perf_counter() - started)
        to_event, to_fragment = [], []
        stream = Stream(port)
        for i in range(args.repeat):
            marker = f"m{i}x{time.monotonic_ns()}"
            node_doc = {
                "apiVersion": "meshop.io/v1alpha1",
                "kind": "Node",
                "metadata": {"name": "n0", "labels": {"bench": marker}},
                "spec": {"cordon": i % 2 == 0},
            }
            started = time.perf_counter()
            store.put(keys.desired_node("n0"), json.dumps(node_doc))
            stream.wait_changed()
            to_event.append(time.perf_counter() - started)
            while marker not in get(port, "/fragment/overview"):  # the watch may still settle
                stream.wait_changed()
            to_fragment.append(time.perf_counter() - started)
        stream.close()
        streams = [Stream(port) for _ in range(args.streams)]
        fan = []
        for i in range(max(3, args.repeat // 4)):
            done = threading.Barrier(len(streams) + 1)
            threads = [threading.Thread(target=lambda s=s, b=done: (s.wait_changed(), b.wait())) for s in streams]
            for t in threads:
                t.start()
            started = time.perf_counter()
            store.put(
                keys.desired_node("n1"),
                json.dumps(
                    {
                        "apiVersion": "meshop.io/v1alpha1",
                        "kind": "Node",
                        "metadata": {"name": "n1"},
                        "spec": {"cordon": i % 2 == 0},
                    }
                ),
            )
            done.wait(timeout=30)
            fan.append(time.perf_counter() - started)
            for t in threads:
                t.join()
        for s in streams:
            s.close()
        rounds = args.usage_rounds
        for r in range(rounds):  # the history keeps a point per node when its record is new
            write_usage(store, args.services, args.nodes, time.time() - (rounds - r) * 10.0, r)
            deadline = time.monotonic() + 10
            while dash.live.history.sizes()[1] < (r + 1) * args.nodes and time.monotonic() < deadline:
                time.sleep(0.02)
        series, points = dash.live.history.sizes()
        get(port, "/fragment/overview")
        charted = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            charted_size = len(get(port, "/fragment/overview"))
            charted.append(time.perf_counter() - started)
    finally:
        dash.stop()
    print(
        f"dashboard, {args.services} services, {args.nodes} nodes, {args.events} events (fragment {size // 1024} KiB):"
    )
    print(f"  render  GET /fragment/overview          {ms(render)}   ({args.repeat} runs)")
    print(f"  change -> SSE event                     {ms(to_event)}")
    print(f"  change -> fragment showing it          {ms(to_fragment)}")
    print(f"  change -> event on all {args.streams:3d} streams       {ms(fan)}")
    print(
        f"  render with usage charts               {ms(charted)}   (fragment {charted_size // 1024} KiB; "
        f"{series} series, {points} points in the history)"
    )


if __name__ == "__main__":
    main()
