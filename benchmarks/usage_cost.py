"""What usage sampling costs the agent: CPU and memory per pass at 10 and 50 containers.

    .venv/bin/python benchmarks/usage_cost.py [--counts 10,50] [--passes 12] [--interval 10]

Starts N busybox sleepers on the shared Docker engine, labelled as one benchmark node's managed replicas,
and runs the agent's real ``UsageSampler`` (the real Docker driver, one-shot stats, 16 reads at once; the
real /proc reader; no KV sink, the write is one small transaction) for ``--passes`` passes back to back.
Per pass it measures this process's CPU time (every thread: the stats pool included) and wall time, and
prints the agent's added CPU as a share of one core at the sampling interval (CPU per pass / interval),
and the memory the sampler's state and pool add (``tracemalloc`` peak over the passes, and RSS before and
after). The peer measured in the same run: ``docker stats --no-stream`` over the same containers (the CLI
a Portainer user would run), its wall time per read and the ratio.

Goal from issue 27: at 50 containers the agent's added CPU ≤ 2 % of one core and added memory ≤ 10 MB.
Everything started is removed by its labels at the end.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meshop.agent.engine.docker_driver import DockerDriver  # noqa: E402
from meshop.agent.engine.host import HostReader  # noqa: E402
from meshop.agent.sampler import UsageSampler  # noqa: E402

IMAGE = "meshop-test/busybox:1"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(node: str, count: int, first: int) -> list[str]:
    ids = []
    for replica in range(first, count):
        labels = [
            f"meshop.managed=true,meshop.node={node},meshop.service=bench,meshop.replica={replica}",
            "meshop.spec-hash=bench,meshop.config-hash=bench,meshop.generation=1",
        ]
        args = ["docker", "run", "-d", "--name", f"meshop-{node}-bench-{replica}"]
        for group in labels:
            for label in group.split(","):
                args += ["--label", label]
        out = subprocess.run([*args, IMAGE, "/bin/sleep", "3600"], capture_output=True, text=True, check=True)
        ids.append(out.stdout.strip())
    return ids


def cleanup(node: str) -> None:
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=meshop.node={node}"], capture_output=True, text=True
    ).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True)


def measure(driver: DockerDriver, node: str, passes: int, interval: float) -> dict[str, float]:
    containers = driver.list_managed()
    sampler = UsageSampler(node, driver, lambda: containers, HostReader(), None, interval=interval)
    sampler.sample_once()  # the first pass: samples only
    rss_before = rss_mb()
    tracemalloc.start()
    cpu_times, walls = [], []
    try:
        for _ in range(passes):
            began_cpu, began = time.process_time(), time.perf_counter()
            record = sampler.sample_once()
            cpu_times.append(time.process_time() - began_cpu)
            walls.append(time.perf_counter() - began)
            assert record is not None and len(record.replicas) == len(containers), "every replica sampled"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sampler.stop()
    cpu = sorted(cpu_times)[len(cpu_times) // 2]
    return {
        "containers": len(containers),
        "cpu_ms": cpu * 1000,
        "wall_ms": sorted(walls)[len(walls) // 2] * 1000,
        "core_share": 100 * cpu / interval,
        "peak_mb": peak / 2**20,
        "rss_delta_mb": rss_mb() - rss_before,
    }


def docker_stats_wall(node: str) -> float:
    began = time.perf_counter()
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=meshop.node={node}"], capture_output=True, text=True
    ).stdout.split()
    fmt = "{{.Name}} {{.CPUPerc}} {{.MemUsage}}"
    subprocess.run(["docker", "stats", "--no-stream", "--format", fmt, *ids], capture_output=True, check=True)
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,50")
    parser.add_argument("--passes", type=int, default=12)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    node = f"bench{secrets.token_hex(3)}"
    driver = DockerDriver(node)
    started = 0
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(
        f"{'containers':>10} {'cpu/pass':>10} {'wall/pass':>10} {'core %':>8} {'peak MB':>8} {'rss +MB':>8}"
        f" {'docker stats':>13} {'ratio':>6}"
    )
    try:
        for count in (int(c) for c in args.counts.split(",")):
            start(node, count, started)
            started = count
            m = measure(driver, node, args.passes, args.interval)
            peer = docker_stats_wall(node)
            print(
                f"{m['containers']:>10.0f} {m['cpu_ms']:>8.1f}ms {m['wall_ms']:>8.1f}ms {m['core_share']:>7.2f}%"
                f" {m['peak_mb']:>8.2f} {m['rss_delta_mb']:>8.2f} {peer:>11.0f}ms {peer / m['wall_ms']:>5.1f}x"
            )
    finally:
        driver.close()
        cleanup(node)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"(core % = CPU per pass / {args.interval:g} s interval; peak MB = tracemalloc peak during the passes;"
        f" max RSS of this process {maxrss:.0f} MB)"
    )


if __name__ == "__main__":
    main()
