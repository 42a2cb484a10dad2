"""Where the time of one ``meshop apply`` goes, from the KV write to a running container.

    .venv/bin/python benchmarks/apply_breakdown.py [--repeat 7] [--size 1]

Needs root, like ``cli_latency.py --e2e`` (whose isolated engine and ``Cluster`` it uses): a controller and
an agent at ``--log-level debug`` on an engine of this run's own. Each round applies ``--size`` new
services and reads the daemons' debug log lines to time, from the moment ``meshop apply`` was started:

* cli exit: ``meshop apply`` returned (its KV write is just before);
* controller woke: its ``desired/`` watch delivered the change;
* controller wrote: the pass wrote the assignments;
* agent woke: its assignments watch delivered them;
* first create: the agent asked Docker to create the first container;
* last started: Docker's start call returned for the last one;
* running: ``docker ps`` shows them all running (polled every 20 ms, as the benchmark does).

Prints the median of each step (milliseconds since the apply began) and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_latency import Cluster, consul_server, isolated_engine, new_services, until_running

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
STEPS = ("cli exit", "controller woke", "controller wrote", "agent woke", "first create", "last started", "running")


def log_lines(path: Path, since: float) -> list[tuple[float, str]]:
    """(unix time, message) of every line of a daemon's text log written at or after ``since``."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        match = STAMP.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= since - 0.001:
                found.append((stamp, match.group(2)))
    return found


def first(lines: list[tuple[float, str]], pattern: str, after: float = 0.0) -> float | None:
    return next((t for t, m in lines if t >= after and re.search(pattern, m)), None)


def one_round(cluster: Cluster, size: int, workdir: Path, show: bool = False) -> dict[str, float]:
    tag = f"b{secrets.token_hex(3)}"
    path = new_services(workdir, size, tag)
    began, wall = time.perf_counter(), time.time()
    cluster.apply(path)
    cli = time.perf_counter() - began
    running = until_running(cluster.env, f"meshop.node={cluster.node}", size, began)
    time.sleep(0.2)  # let the daemons' log lines reach their files
    ctl = log_lines(cluster.controller.log_path, wall)
    agent = log_lines(cluster.agent.log_path, wall)
    if show:
        merged = sorted([(t, "controller", m) for t, m in ctl] + [(t, "agent", m) for t, m in agent])
        for t, who, message in merged:
            print(f"{(t - wall) * 1000:>7.0f} ms  {who:<10} {message[:150]}")
    woke = first(ctl, r"watch kv:desired/: ")
    wrote = first(ctl, r"wrote \d+ key")
    agent_woke = first(agent, r"watch kv:assignments/")
    created = first(agent, rf"creating \S*{tag}")
    started = [t for t, m in agent if re.search(rf"{tag}\S*: created in", m)]
    stamps = {
        "controller woke": woke,
        "controller wrote": wrote,
        "agent woke": agent_woke,
        "first create": created,
        "last started": max(started) if len(started) >= size else None,
    }
    out = {"cli exit": cli, "running": running}
    out.update({k: v - wall for k, v in stamps.items() if v is not None})
    cluster.clear()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--size", type=int, default=1, help="services per apply")
    parser.add_argument("--show", action="store_true", help="print the daemons' log lines of every round")
    args = parser.parse_args()
    rounds = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="meshop-breakdown-") as tmp, consul_server(Path(tmp)) as consul:
        work = Path(tmp)
        with isolated_engine(work) as sock, Cluster(consul, sock, None, work, log_level="debug") as cluster:
            one_round(cluster, args.size, work)  # warm-up: first image use, first pass of each kind
            for _ in range(args.repeat):
                loads.append(os.getloadavg()[0])
                rounds.append(one_round(cluster, args.size, work, args.show))
    print(f"\napply of {args.size} service(s) to running, median of {args.repeat} (ms since the apply began)")
    print(f"load average (1 min) during the rounds: {min(loads):.2f} to {max(loads):.2f}")
    previous = 0.0
    for step in STEPS:
        values = [r[step] for r in rounds if step in r]
        if not values:
            print(f"{step:<18}{'-':>8}")
            continue
        median = statistics.median(values) * 1000
        spread = f"[{min(values) * 1000:.0f}..{max(values) * 1000:.0f}]"
        print(f"{step:<18}{median:>8.0f}   (+{median - previous:.0f})   {spread}")
        previous = median


if __name__ == "__main__":
    main()
