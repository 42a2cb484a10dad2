"""Controller at scale: 5,000 services on 100 simulated nodes against a real Consul it starts itself.

    .venv/bin/python benchmarks/controller_scale.py [--sizes 500,5000] [--nodes 100] [--idle-seconds 60]
        [--before DIR] [--warm-only]

With ``--before DIR`` (an older meshop checkout, e.g. ``git archive 8250582 | tar -x -C DIR``) every
size is measured for both trees in the same run (workers import meshop from DIR), and the warm pass is
printed as before → after with the growth per size step; ``--warm-only`` skips the cold start.

For each size the parent loads a fresh KV prefix with transactions (node records, desired documents) and
registers one ``meshop-agent-<node>`` per node with a passing TTL check, then runs a worker process that
holds the controller, so the worker's peak RSS is the controller's own. The worker measures:

* initial placement: from start until every service has a status and a pass writes nothing;
* a warm full pass (parsed documents and owned records cached; median of 5 passes, nothing to write);
* a cold full pass (a fresh controller taking over: every document parsed, owned keys re-read);
* Consul requests per minute while nothing changes (every HTTP request the process sends is counted);
* peak RSS (``resource.getrusage``).

The idle request rate must not depend on the number of services: the table shows both sizes side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if os.environ.get("MESHOP_TREE"):  # a worker measuring another checkout's meshop
    sys.path.insert(0, os.environ["MESHOP_TREE"])

import requests  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.services import CheckSpec, Registration, Services  # noqa: E402
from meshop.consul.store import KVStore, TxnOp  # noqa: E402
from meshop.model import keys  # noqa: E402
from meshop.model.records import Assignment, Capacity, NodeRecord, Observed, dumps, loads_json  # noqa: E402
from meshop.operator.controller import Controller, ControllerOptions  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402

GiB = 1024**3


def chunks(ops: list[TxnOp], size: int = 64) -> list[list[TxnOp]]:
    return [ops[i : i + size] for i in range(0, len(ops), size)]


def service_doc(i: int) -> str:
    spec: dict = {
        "image": f"registry.example.com/app{i % 50}:1.{i % 7}",
        "ports": [{"name": "http", "container": 80}],
        "replicas": 2 if i % 4 == 0 else 1,
        "resources": {"memory": "32Mi", "cpus": 0.01},
        "env": [{"name": "INDEX", "value": str(i)}],
        "health": {"http": {"path": "/", "port": "http"}, "interval": "10s"},
    }
    if i % 10 == 0:
        spec["route"] = {"host": f"svc{i}.example.com", "port": "http"}
    doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": f"svc{i}"}, "spec": spec}
    return json.dumps(doc)


def load(server: ConsulServer, prefix: str, services: int, nodes: int) -> None:
    config = ConsulConfig.from_env({}, addr=server.addr, prefix=prefix, timeout=30)
    store = KVStore(config)
    agents = Services(config, store.client)
    ops = []
    for n in range(nodes):
        name = f"{prefix}-n{n:03d}"
        record = NodeRecord(name, f"10.0.{n // 250}.{n % 250 + 1}", {"zone": f"z{n % 3}"}, Capacity(8.0, 32 * GiB))
        ops.append(TxnOp.set(keys.node(name), dumps(record)))
        check = CheckSpec(f"meshop-agent-{name}:ttl", "agent alive", ttl="1h", initial_status="passing")
        agents.register(
            Registration(f"meshop-agent-{name}", "meshop-agent", "127.0.0.1", 0, {"node": name}, (), (check,))
        )
    ops += [TxnOp.set(keys.desired_service(f"svc{i}"), service_doc(i)) for i in range(services)]
    for chunk in chunks(ops):
        store.transact(chunk)


# --- worker: the controller's process ---------------------------------------------------------------


class RequestCounter:
    """Counts every HTTP request this process sends (py-consul uses ``requests``), by kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.enabled = False
        self._lock = threading.Lock()
        original = requests.Session.send
        counter = self

        def send(session, request, **kwargs):  # type: ignore[no-untyped-def]
            if counter.enabled:
                path = request.path_url.split("?")[0]
                kind = f"{request.method} {'/'.join(path.split('/')[:4])}"
                if "index=" in request.path_url:
                    kind += " (blocking)"
                with counter._lock:
                    counter.counts[kind] += 1
            return original(session, request, **kwargs)

        requests.Session.send = send  # type: ignore[method-assign]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class TimedController:
    """A controller whose passes are timed (the loop calls ``reconcile`` through this wrapper)."""

    def __init__(self, config: ConsulConfig, ident: str) -> None:
        # a long TTL: passes at 5,000 services on a loaded machine must not cost the leadership
        self.ctl = Controller(config, ControllerOptions(ident, lock_delay=1, check_ttl=15.0, local_cluster=True))
        # duration, leader, services, operations, CPU time of the pass (its thread: robust to a loaded machine)
        self.passes: list[tuple[float, bool, int, int, float]] = []
        inner = self.ctl.reconcile

        def timed() -> float | None:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return inner()
            finally:
                last = self.ctl.last
                took = time.perf_counter() - started
                self.passes.append((took, last.leader, last.services, last.operations, time.thread_time() - cpu))

        self.ctl.loop.reconcile = timed

    def wait(self, condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def one_pass(self) -> tuple[float, bool, int, int, float]:
        count = len(self.passes)
        self.ctl.wakeup.notify("bench")
        self.wait(lambda: len(self.passes) > count, 60, "a pass")
        return self.passes[-1]


def report_all_ready(store: KVStore) -> int:
    """Write observed state for every assignment, as healthy agents would (not counted: agents' traffic)."""
    ops = []
    for entry in store.list(keys.ASSIGNMENTS).entries:
        a = Assignment.from_dict(loads_json(entry.value))
        seen = Observed(a.service, a.node, a.spec_hash, a.generation, a.replicas)
        ops.append(TxnOp.set(keys.observed(a.node, a.service), dumps(seen)))
    for chunk in chunks(ops):
        store.transact(chunk)
    return len(ops)


def worker(mode: str, addr: str, prefix: str, services: int, idle_seconds: float) -> dict:
    """One measurement in a fresh process, so its peak RSS is one controller's own."""
    counter = RequestCounter()
    config = ConsulConfig.from_env({}, addr=addr, prefix=prefix, timeout=30)
    result: dict = {"services": services}
    if mode == "steady":
        steady_state(config, services, idle_seconds, counter, result)
    else:
        cold_start(config, services, result)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def cold_start(config: ConsulConfig, services: int, result: dict) -> None:
    """A controller started in a fresh process over a populated cluster (a restart, or the first standby
    after every controller was down): from ``start()`` until its first full pass as leader has finished —
    watches' first listings, every document parsed, owned keys read, a plan that changes nothing."""
    ctl = TimedController(config, f"{config.prefix}-cold")
    started = time.perf_counter()
    ctl.ctl.start()
    ctl.wait(lambda: any(p[1] and p[2] == services for p in ctl.passes), 120, "the cold pass")
    result["cold_start_s"] = time.perf_counter() - started
    first = next(p for p in ctl.passes if p[1] and p[2] == services)
    result["cold_pass_s"] = first[0]
    result["cold_pass_writes"] = first[3]
    ctl.ctl.stop()


def steady_state(
    config: ConsulConfig, services: int, idle_seconds: float, counter: RequestCounter, result: dict
) -> None:
    """Initial placement, then a warm pass and the idle request rate with every service Ready."""
    store = KVStore(config)
    first = TimedController(config, f"{config.prefix}-first")
    started = time.perf_counter()
    first.ctl.start()

    def converged() -> bool:
        last = first.passes[-1] if first.passes else None
        return last is not None and last[1] and last[2] == services and not last[3]

    first.wait(converged, 600, "initial placement")
    result["initial_placement_s"] = time.perf_counter() - started
    result["assignments"] = len(store.list(keys.ASSIGNMENTS).entries)
    result["observed"] = report_all_ready(store)
    first.wait(lambda: _ready_count() == services, 300, "every service Ready")
    warm: list[tuple[float, bool, int, int, float]] = []
    for _ in range(40):  # statuses may still settle (a write): count only passes that write nothing
        done = first.one_pass()
        warm = [*warm, done] if done[1] and done[2] == services and done[3] == 0 else []
        if len(warm) == 7:
            break
    assert len(warm) == 7, "no quiet passes"
    result["warm_pass_s"] = statistics.median(p[0] for p in warm)
    result["warm_pass_cpu_s"] = statistics.median(p[4] for p in warm)

    counter.enabled = True
    counter.reset()
    time.sleep(idle_seconds)
    result["idle_requests_per_min"] = counter.total * 60.0 / idle_seconds
    result["idle_breakdown"] = dict(counter.counts)
    counter.enabled = False
    first.ctl.stop()


def _ready_count() -> int:
    return int(REGISTRY.get_sample_value("meshop_services", {"state": "ready"}) or 0)


def run_worker(mode: str, addr: str, prefix: str, size: int, idle_seconds: float, tree: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--idle-seconds", str(idle_seconds), "--worker", mode, addr, prefix, str(size)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MESHOP_TREE": str(tree or "")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} worker at {size} services failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result[f"{mode}_rss_mb"] = result.pop("peak_rss_mb")
    return result


# --- parent --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,5000", help="numbers of services to measure (comma-separated)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="length of the idle window")
    parser.add_argument("--before", type=Path, help="an older meshop checkout to measure in the same run")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold start (no cold rows)")
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "ADDR", "PREFIX", "SERVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, addr, prefix, services = args.worker
        print(json.dumps(worker(mode, addr, prefix, int(services), args.idle_seconds)))
        return

    results = []
    before: list[dict] = []
    trees: list[tuple[str, Path | None]] = [("before", args.before.resolve())] if args.before else []
    trees.append(("", None))
    modes = ("steady",) if args.warm_only else ("steady", "cold")
    with tempfile.TemporaryDirectory(prefix="meshop-bench-") as tmp:
        server = ConsulServer(Path(tmp) / "consul").start()
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                for tag, tree in trees:
                    prefix = f"bench{size}{tag}"
                    began = time.perf_counter()
                    load(server, prefix, size, args.nodes)
                    print(
                        f"loaded {size} services and {args.nodes} nodes in {time.perf_counter() - began:.1f}s",
                        flush=True,
                    )
                    row: dict = {}
                    for mode in modes:
                        row.update(run_worker(mode, server.addr, prefix, size, args.idle_seconds, tree))
                    (before if tag else results).append(row)
                    print(f"measured {size} services{' (before)' if tag else ''}", flush=True)
        finally:
            server.stop()

    print()
    print(
        f"controller_scale: {args.nodes} simulated nodes, real Consul (dev agent), idle window {args.idle_seconds:.0f}s"
    )
    rows = [
        ("services", "{services}", ""),
        ("assignments written", "{assignments}", ""),
        ("initial placement (s)", "{initial_placement_s:.2f}", "(writes every assignment, status, route)"),
        ("full pass, warm cache (s)", "{warm_pass_s:.3f}", "target < 1 s"),
        ("  its CPU time (s)", "{warm_pass_cpu_s:.3f}", "(the loop thread's; not inflated by other load)"),
        ("cold start to first full pass (s)", "{cold_start_s:.2f}", "fresh process: list, parse, plan"),
        ("  of which the first leader pass (s)", "{cold_pass_s:.2f}", "(parsing may fall in a standby pass)"),
        ("idle Consul requests/min", "{idle_requests_per_min:.1f}", "target: independent of services"),
        ("peak RSS, steady (MB)", "{steady_rss_mb:.0f}", "target < 200 MB (placement, Ready, idle)"),
        ("peak RSS, cold start (MB)", "{cold_rss_mb:.0f}", "target < 200 MB (fresh process taking over)"),
    ]
    width = max(len(r[0]) for r in rows)
    header = " | ".join(f"{r['services']:>10}" for r in results)
    print(f"{'':<{width}} | {header}")
    for label, fmt, note in rows[1:]:
        if args.warm_only and "cold" in fmt:
            continue
        cells = " | ".join(f"{fmt.format(**r):>10}" for r in results)
        print(f"{label:<{width}} | {cells}   {note}")
    print()
    for r in results:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(r["idle_breakdown"].items()))
        print(f"idle requests at {r['services']} services over {args.idle_seconds:.0f}s: {detail}")
    warm = max(r["warm_pass_s"] for r in results)
    rss = max(max(r["steady_rss_mb"], r.get("cold_rss_mb", 0)) for r in results)
    rates = [r["idle_requests_per_min"] for r in results]
    print()
    print(
        f"full pass < 1 s: {'yes' if warm < 1 else 'NO'} ({warm:.3f}s);  peak RSS < 200 MB: "
        f"{'yes' if rss < 200 else 'NO'} ({rss:.0f} MB);  idle rate spread across sizes: "
        f"{max(rates) - min(rates):.1f} requests/min"
    )
    print_linearity(results, before)


def print_linearity(after: list[dict], before: list[dict]) -> None:
    """Warm pass per service at each size, relative to the smallest size (linear: 1.00 at every size)."""
    print()
    print("warm pass CPU time per service relative to the smallest size (linear = 1.00; goal 0.85-1.15)")
    columns = [("before", before), ("after", after)] if before else [("", after)]
    for label, rows in columns:
        base = rows[0]["warm_pass_cpu_s"] / rows[0]["services"]
        cells = ", ".join(
            f"{r['services']}: {r['warm_pass_cpu_s']:.3f}s ({r['warm_pass_cpu_s'] / r['services'] / base:.2f})"
            for r in rows
        )
        print(f"  {label:<7}{cells}")
    if before:
        ratios = ", ".join(
            f"{a['services']}: {a['warm_pass_cpu_s'] / b['warm_pass_cpu_s']:.2f}x"
            for a, b in zip(after, before, strict=False)
        )
        print(f"  after/before (CPU): {ratios}")


if __name__ == "__main__":
    main()
