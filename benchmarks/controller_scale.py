"""Controller at scale: 5,000 services on 100 simulated nodes against a real Consul it starts itself.

    .venv/bin/python benchmarks/controller_scale.py [--sizes 500,5000] [--nodes 100] [--idle-seconds 60]
        [--before DIR] [--warm-only]

With ``--before DIR`` (an older meshop checkout, e.g. ``git archive 8250582 | tar -x -C DIR``) every
size is measured for both trees in the same run (workers import meshop from DIR), and the warm pass is
printed as before → after with the growth per size step; ``--warm-only`` skips the cold start.

The machine is shared: a figure measured at 500 services now and at 5,000 a minute later compares two
machines. So every steady worker (each size, each tree) stays alive once it has converged, and the warm
passes are taken in ``--rounds`` rounds, one pass of every worker per round (the order rotated each
round): each size meets the same load. The linearity table gives the median over rounds of each size's
time per service against 500's in the same round.

For each size the parent loads a fresh KV prefix with transactions (node records, desired documents) and
registers one ``meshop-agent-<node>`` per node with a passing TTL check, then runs a worker process that
holds the controller, so the worker's peak RSS is the controller's own. The worker measures:

* initial placement: from start until every service has a status and a pass writes nothing;
* a warm full pass (parsed documents and owned records cached, nothing to write, owned keys not re-read):
  wall and CPU time of ``reconcile`` in the loop thread, and CPU time of the whole loop iteration
  (``run_once``: the pass plus the collection the loop lets run after it), and the cyclic garbage
  collector's CPU time in every thread of the process between two passes (``gc.callbacks``);
* a cold full pass (a fresh controller taking over: every document parsed, owned keys re-read);
* Consul requests per minute while nothing changes (every HTTP request the process sends is counted);
* peak RSS (``resource.getrusage``).

The idle request rate must not depend on the number of services: the table shows both sizes side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
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
            Registration(f"meshop-agent-{name}", f"meshop-agent-{name}", "127.0.0.1", 0, {"node": name}, (), (check,))
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


class GcClock:
    """CPU time the cyclic collector spends, in every thread of this process (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._local.started = time.thread_time()
            return
        took = time.thread_time() - getattr(self._local, "started", time.thread_time())
        with self._lock:
            self.total += took
            self.collections += 1


def controller_options(ident: str) -> ControllerOptions:
    # a long TTL: passes at 5,000 services on a loaded machine must not cost the leadership
    wanted = {"lock_delay": 1, "check_ttl": 15.0, "local_cluster": True}
    known = {f.name for f in dataclasses.fields(ControllerOptions)}  # an older tree (--before) may lack some
    return ControllerOptions(ident, **{k: v for k, v in wanted.items() if k in known})


class TimedController:
    """A controller whose passes are timed (the loop calls ``run_once`` and ``reconcile`` through wrappers)."""

    def __init__(self, config: ConsulConfig, ident: str) -> None:
        self.ctl = Controller(config, controller_options(ident))
        self.gc = GcClock()
        # duration, leader, services, operations, CPU time of the pass (its thread: robust to a loaded
        # machine), CPU time of the loop iteration around it, owned keys re-read in it, collector CPU time
        # in the process since the previous pass ended
        self.passes: list[Pass] = []
        self._gc_mark = 0.0
        inner, loop_once = self.ctl.reconcile, self.ctl.loop.run_once
        current: dict = {}

        def timed() -> float | None:
            loaded = self.ctl.owned.loaded_at
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return inner()
            finally:
                last = self.ctl.last
                current.update(
                    took=time.perf_counter() - started,
                    last=last,
                    cpu=time.thread_time() - cpu,
                    reloaded=self.ctl.owned.loaded_at != loaded,
                )

        def timed_once() -> float | None:
            current.clear()
            cpu = time.thread_time()
            try:
                return loop_once()
            finally:
                if current:
                    gc_now = self.gc.total
                    last = current["last"]
                    self.passes.append(
                        Pass(
                            current["took"],
                            last.leader,
                            last.services,
                            last.operations,
                            current["cpu"],
                            time.thread_time() - cpu,
                            current["reloaded"],
                            gc_now - self._gc_mark,
                        )
                    )
                    self._gc_mark = gc_now

        self.ctl.loop.reconcile = timed
        self.ctl.loop.run_once = timed_once  # type: ignore[method-assign]

    def wait(self, condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def one_pass(self) -> Pass:
        count = len(self.passes)
        self.ctl.wakeup.notify("bench")
        self.wait(lambda: len(self.passes) > count, 60, "a pass")
        return self.passes[-1]

    def quiet_pass(self, services: int, tries: int = 20) -> Pass:
        """A warm pass: leader, every service, nothing written, owned keys not re-read (a resync's)."""
        for _ in range(tries):
            done = self.one_pass()
            if done.leader and done.services == services and not done.operations and not done.reloaded:
                return done
        raise RuntimeError(f"no quiet pass in {tries} passes")


@dataclasses.dataclass(frozen=True)
class Pass:
    took: float
    leader: bool
    services: int
    operations: int
    cpu: float
    loop_cpu: float
    reloaded: bool
    gc_cpu: float


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
    ctl.wait(lambda: any(p.leader and p.services == services for p in ctl.passes), 120, "the cold pass")
    result["cold_start_s"] = time.perf_counter() - started
    first = next(p for p in ctl.passes if p.leader and p.services == services)
    result["cold_pass_s"] = first.took
    result["cold_pass_writes"] = first.operations
    ctl.ctl.stop()


def steady_state(
    config: ConsulConfig, services: int, idle_seconds: float, counter: RequestCounter, result: dict
) -> None:
    """Initial placement and every service Ready; then, on the parent's commands (one a line on stdin),
    ``pass`` (one quiet warm pass, printed) and ``idle`` (the idle window), until ``done``."""
    store = KVStore(config)
    first = TimedController(config, f"{config.prefix}-first")
    started = time.perf_counter()
    first.ctl.start()

    def converged() -> bool:
        last = first.passes[-1] if first.passes else None
        return last is not None and last.leader and last.services == services and not last.operations

    first.wait(converged, 600, "initial placement")
    result["initial_placement_s"] = time.perf_counter() - started
    result["assignments"] = len(store.list(keys.ASSIGNMENTS).entries)
    result["observed"] = report_all_ready(store)
    first.wait(lambda: _ready_count() == services, 300, "every service Ready")
    for _ in range(3):  # statuses may still settle (a write): start the rounds from quiet passes
        first.quiet_pass(services)
    print(json.dumps({"ready": True}), flush=True)
    warm: list[Pass] = []
    for command in sys.stdin:
        command = command.strip()
        if command == "pass":
            warm.append(first.quiet_pass(services))
            print(json.dumps(dataclasses.asdict(warm[-1])), flush=True)
        elif command == "idle":
            counter.enabled = True
            counter.reset()
            time.sleep(idle_seconds)
            counter.enabled = False
            print(json.dumps({"idle_requests": dict(counter.counts)}), flush=True)
        elif command == "done":
            break
    result["warm_passes"] = len(warm)
    first.ctl.stop()


def _ready_count() -> int:
    return int(REGISTRY.get_sample_value("meshop_services", {"state": "ready"}) or 0)


def worker_env(tree: Path | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "MESHOP_TREE": str(tree or "")}


def worker_cmd(mode: str, addr: str, prefix: str, size: int, idle_seconds: float) -> list[str]:
    return [sys.executable, __file__, "--idle-seconds", str(idle_seconds), "--worker", mode, addr, prefix, str(size)]


def run_worker(mode: str, addr: str, prefix: str, size: int, idle_seconds: float, tree: Path | None = None) -> dict:
    cmd = worker_cmd(mode, addr, prefix, size, idle_seconds)
    done = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(tree))
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} worker at {size} services failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result[f"{mode}_rss_mb"] = result.pop("peak_rss_mb")
    return result


class SteadyWorker:
    """A steady worker kept alive across the rounds: one command a line on its stdin, one JSON line back."""

    def __init__(self, addr: str, prefix: str, size: int, idle_seconds: float, tree: Path | None) -> None:
        self.size = size
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by kill()
        self.proc = subprocess.Popen(
            worker_cmd("steady", addr, prefix, size, idle_seconds),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=worker_env(tree),
        )

    def answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(30)
            self.stderr.seek(0)
            raise RuntimeError(f"the steady worker at {self.size} services failed:\n{self.stderr.read()[-2000:]}")
        return json.loads(line)

    def command(self, what: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self.answer() if what != "done" else {}

    def finish(self) -> dict:
        self.command("done")
        result = self.answer()
        self.proc.wait(60)
        result["steady_rss_mb"] = result.pop("peak_rss_mb")
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # this worker's own PID
            self.proc.wait(30)
        self.stderr.close()


def steady_row(worker: SteadyWorker, passes: list[dict], idle: dict, final: dict, idle_seconds: float) -> dict:
    row = dict(final)
    row["warm_rounds"] = passes
    for field, name in (("took", "warm_pass_s"), ("cpu", "warm_pass_cpu_s"), ("loop_cpu", "warm_loop_cpu_s")):
        row[name] = statistics.median(p[field] for p in passes)
    row["warm_gc_cpu_s"] = statistics.median(p["gc_cpu"] for p in passes)
    row["idle_breakdown"] = idle["idle_requests"]
    row["idle_requests_per_min"] = sum(idle["idle_requests"].values()) * 60.0 / idle_seconds
    return row


# --- parent --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,2000,5000", help="numbers of services to measure (comma-separated)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="length of the idle window")
    parser.add_argument("--rounds", type=int, default=9, help="warm passes per worker, one per round")
    parser.add_argument("--before", type=Path, help="an older meshop checkout to measure in the same run")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold start (no cold rows)")
    parser.add_argument("--json", type=Path, help="also write every measurement (each pass of each round) here")
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "ADDR", "PREFIX", "SERVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, addr, prefix, services = args.worker
        print(json.dumps(worker(mode, addr, prefix, int(services), args.idle_seconds)), flush=True)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    trees: list[tuple[str, Path | None]] = [("before", args.before.resolve())] if args.before else []
    trees.append(("", None))
    rows: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="meshop-bench-") as tmp:
        server = ConsulServer(Path(tmp) / "consul").start()
        workers: dict[tuple[str, int], SteadyWorker] = {}
        try:
            for size in sizes:
                for tag, tree in trees:
                    prefix = f"bench{size}{tag}"
                    began = time.perf_counter()
                    load(server, prefix, size, args.nodes)
                    print(
                        f"loaded {size} services and {args.nodes} nodes in {time.perf_counter() - began:.1f}s",
                        flush=True,
                    )
                    workers[(tag, size)] = SteadyWorker(server.addr, prefix, size, args.idle_seconds, tree)
                    workers[(tag, size)].answer()
                    print(f"converged at {size} services{' (before)' if tag else ''}", flush=True)
            order = list(workers)
            passes: dict[tuple[str, int], list[dict]] = {k: [] for k in order}
            for round_ in range(args.rounds):  # every worker once a round, the order rotated: same load for all
                for key in order[round_ % len(order) :] + order[: round_ % len(order)]:
                    passes[key].append(workers[key].command("pass"))
            print(f"{args.rounds} rounds of warm passes done", flush=True)
            for key in order:
                idle = workers[key].command("idle")
                rows[key] = steady_row(workers[key], passes[key], idle, workers[key].finish(), args.idle_seconds)
            if not args.warm_only:
                for (tag, size), row in rows.items():
                    tree = dict(trees)[tag]
                    row.update(run_worker("cold", server.addr, f"bench{size}{tag}", size, args.idle_seconds, tree))
        finally:
            for w in workers.values():
                w.kill()
            server.stop()

    results = [rows[("", size)] for size in sizes]
    if args.json:
        args.json.write_text(json.dumps({f"{tag or 'after'}:{size}": row for (tag, size), row in rows.items()}))
    before = [rows[("before", size)] for size in sizes] if args.before else []
    print()
    print(
        f"controller_scale: {args.nodes} simulated nodes, real Consul (dev agent), idle window {args.idle_seconds:.0f}s"
    )
    table = [
        ("services", "{services}", ""),
        ("assignments written", "{assignments}", ""),
        ("initial placement (s)", "{initial_placement_s:.2f}", "(writes every assignment, status, route)"),
        ("full pass, warm cache (s)", "{warm_pass_s:.3f}", "target < 1 s"),
        ("  its CPU time (s)", "{warm_pass_cpu_s:.3f}", "(the loop thread's; not inflated by other load)"),
        ("  loop iteration around it, CPU (s)", "{warm_loop_cpu_s:.3f}", "(+ the collection let run after it)"),
        ("  cyclic GC per pass, all threads (s)", "{warm_gc_cpu_s:.3f}", "(CPU time, gc.callbacks)"),
        ("cold start to first full pass (s)", "{cold_start_s:.2f}", "fresh process: list, parse, plan"),
        ("  of which the first leader pass (s)", "{cold_pass_s:.2f}", "(parsing may fall in a standby pass)"),
        ("idle Consul requests/min", "{idle_requests_per_min:.1f}", "target: independent of services"),
        ("peak RSS, steady (MB)", "{steady_rss_mb:.0f}", "target < 200 MB (placement, Ready, idle)"),
        ("peak RSS, cold start (MB)", "{cold_rss_mb:.0f}", "target < 200 MB (fresh process taking over)"),
    ]
    width = max(len(r[0]) for r in table)
    header = " | ".join(f"{r['services']:>10}" for r in results)
    print(f"{'':<{width}} | {header}")
    for label, fmt, note in table[1:]:
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
    print_linearity(results, before, args.rounds)


def growth(rows: list[dict], field: str) -> list[float]:
    """Per size: its time per service over the smallest size's, in the same round; median over rounds."""
    base = rows[0]
    return [
        statistics.median(
            (p[field] / row["services"]) / (b[field] / base["services"])
            for p, b in zip(row["warm_rounds"], base["warm_rounds"], strict=True)
        )
        for row in rows
    ]


def print_linearity(after: list[dict], before: list[dict], rounds: int) -> None:
    """Warm pass per service at each size, relative to the smallest size (linear: 1.00 at every size)."""
    print()
    print(
        f"warm pass per service at each size vs the smallest, paired by round (median of {rounds} rounds; "
        "linear = 1.00, goal 0.85-1.15)"
    )
    figures = (
        ("CPU", "cpu", "warm_pass_cpu_s"),
        ("wall", "took", "warm_pass_s"),
        ("CPU+GC", "loop_cpu", "warm_loop_cpu_s"),
    )
    for label, rows in [("before", before), ("after", after)] if before else [("", after)]:
        for name, field, median in figures:
            ratios = growth(rows, field)
            cells = "   ".join(
                f"{r['services']}: {r[median]:.3f}s {r[median] / r['services'] * 1e6:5.0f}us/svc ({x:.2f})"
                for r, x in zip(rows, ratios, strict=True)
            )
            print(f"  {label:<7}{name:<7}{cells}")
        cells = "   ".join(
            f"{r['services']}: {r['warm_gc_cpu_s']:.3f}s {r['warm_gc_cpu_s'] / r['services'] * 1e6:5.0f}us/svc"
            for r in rows
        )
        print(f"  {label:<7}{'GC':<7}{cells}   (cyclic collector, all threads, per pass; in the passes above when on)")
    if before:
        for name, field in (("CPU", "warm_pass_cpu_s"), ("CPU+GC", "warm_loop_cpu_s")):
            ratios = ", ".join(
                f"{a['services']}: {a[field] / b[field]:.2f}x" for a, b in zip(after, before, strict=True)
            )
            print(f"  after/before ({name}): {ratios}")


if __name__ == "__main__":
    main()
