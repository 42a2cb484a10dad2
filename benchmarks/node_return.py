"""Where a returning node's time goes: power-on → Ready with no stale copy, step by step, on the fleet.

A 2-replica busybox httpd service on 3 nodes (tests/support/fleet.py, as benchmarks/fleet.py runs it);
the node running a replica that is not n1 is powered off, its replica is replaced on the third node,
then the node is booted again: link up, engine, Consul client, and — once the engine answers — its agent.
Its engine restarts the stale container on its own (restart policy ``unless-stopped``), so the agent finds a
copy of a replica that now runs elsewhere, and must remove it. A thread polls every 20 ms and notes the
first moment of each step; the agent's own log lines (wall time, moved onto this clock) add the steps
inside the agent. Times are seconds from the agent's start (negative: before it), plus the total from
power-on. It also notes whether the stale copy was ever routed (``routes/<host>`` naming the node) and
whether the node was Ready while the stale copy still ran (both must stay "no").

    .venv/bin/python benchmarks/node_return.py [--repeat 3] [--grace 10]     # as root; ~1 min per round

The fleet's daemons run from compiled bytecode, as a meshop installed by pip does (``fleet.compile_bytecode``).
``--ab-bytecode`` alternates rounds without it (meshop's ``.pyc`` removed before the agent starts: every
module compiled at start, as the fleet's agents did before; an upper bound, as then only the modules changed
since the checkout was compiled lacked it) and with it, so both are measured at the same load. Each round
notes the machine's 1-minute load average at power-on.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fleet import Fleet, compile_bytecode, service_doc, session_fleet, wait_for  # noqa: E402

SERVICE = "ret"
HOST = "ret.fleet.test"
REPLICAS = 2
LIMIT = 120.0
POLL = 0.02

# agent log lines -> step name (the first match after the agent's start counts)
LOG_STEPS = [
    ("agent: first log line", re.compile(r".")),
    ("agent: threads started", re.compile(r"agent for node \S+ started")),
    ("agent: registered with Consul", re.compile(r"registered meshop-agent-")),
    ("agent: removing the stale copy", re.compile(rf"removing meshop-\S+-{SERVICE}-")),
]
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


class Timeline:
    """First moments (monotonic) of conditions polled every ``POLL`` seconds on a thread."""

    def __init__(self, checks: dict[str, Callable[[], bool]]) -> None:
        self.checks = checks
        self.first: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, check in self.checks.items():
                if name in self.first:
                    continue
                try:
                    if check():
                        self.first[name] = time.monotonic()
                except (OSError, ValueError, KeyError) as exc:  # a member still booting: try again next round
                    self.errors.append(f"{name}: {exc!r}"[:200])
            self._stop.wait(POLL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def log_moments(path: Path, offset: int, wall_to_mono: float) -> dict[str, float]:
    """The agent's own steps from its log (lines written after ``offset``), on the monotonic clock."""
    found: dict[str, float] = {}
    with open(path, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    for line in lines:
        stamp = STAMP.match(line)
        if not stamp:
            continue
        wall = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for name, pattern in LOG_STEPS:
            if name not in found and pattern.search(line[stamp.end() :]):
                found[name] = wall - wall_to_mono
    return found


def modify_index(fleet: Fleet, key: str) -> int:
    try:
        entries = fleet.consul_get(f"/v1/kv/{fleet.prefix}/{key}")
    except (OSError, ValueError):  # the server answering an error, or not at all
        return 0
    return int(entries[0]["ModifyIndex"]) if entries else 0


def node_passing(fleet: Fleet, node: str) -> bool:
    """What the controller reads for the node's agent: its meshop-agent-<node> instance and every check on it."""
    checks = fleet.consul_get(f"/v1/health/node/{node}") or []
    agent = [c for c in checks if c.get("ServiceName") == f"meshop-agent-{node}"]
    return bool(agent) and all(
        c.get("Status") == "passing" for c in checks if c.get("ServiceName") in ("", f"meshop-agent-{node}")
    )


def one_round(fleet: Fleet, victim: str) -> dict[str, float | str]:
    """Power ``victim`` off, wait for its replacement, boot it; the steps of its return."""
    others = [n for n in fleet.node_names if n != victim]
    member = fleet.node(victim)
    fleet.power_off(victim)
    wait_for(
        lambda: len(fleet.containers(SERVICE, others)) == REPLICAS and fleet.service_ready(SERVICE, REPLICAS, others),
        LIMIT,
        "the replacement outside the victim",
        interval=0.25,
    )
    wait_for(lambda: fleet.node_state(victim) == "NotReady", LIMIT, f"{victim} NotReady", interval=0.25)
    record_index = modify_index(fleet, f"nodes/{victim}")
    fence_index = modify_index(fleet, f"fences/{victim}")
    routed_stale: list[float] = []
    ready_while_stale: list[float] = []
    stale_running = threading.Event()

    def stale() -> bool:
        running = bool(fleet.containers(SERVICE, [victim]))
        if running:
            stale_running.set()
        return running

    def routes_name_victim() -> bool:
        route = fleet.kv(f"routes/{HOST}") or {}
        hit = any(u.get("node") == victim for u in route.get("upstreams", []))
        if hit:
            routed_stale.append(time.monotonic())
        return False  # keep watching: every sighting is noted

    def ready_check() -> bool:
        ready = fleet.node_state(victim) == "Ready"
        if ready and fleet.containers(SERVICE, [victim]):
            ready_while_stale.append(time.monotonic())
        return ready

    wall_to_mono = time.time() - time.monotonic()
    log_path = member.dir / "agent.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    steps = Timeline(
        {
            "engine answers": lambda: fleet.engine_ready(member),
            "stale copy running again (engine's restart policy)": stale,
            "Consul client joined": lambda: victim in fleet.members_alive(),
            "node record rewritten": lambda: modify_index(fleet, f"nodes/{victim}") > record_index,
            "fence rewritten": lambda: modify_index(fleet, f"fences/{victim}") > fence_index,
            "node's checks passing (serfHealth, meshop-agent-<node>)": lambda: node_passing(fleet, victim),
            "controller: node Ready": ready_check,
            "stale copy gone": lambda: stale_running.is_set() and not fleet.containers(SERVICE, [victim]),
            "route names the node": routes_name_victim,
        }
    )
    power_on = time.monotonic()
    load = os.getloadavg()[0]
    steps.start()
    fleet.set_link(victim, True)
    fleet.start_dockerd(member)
    fleet.start_consul(member)
    wait_for(lambda: fleet.engine_ready(member), 60, f"dockerd on {victim}")
    agent_start = time.monotonic()
    fleet.start_agent(member)
    if victim in {m.name for m in fleet.standby_hosts}:  # as Fleet.power_on does
        fleet.start_controller(member)
    wait_for(
        lambda: fleet.node_state(victim) == "Ready" and not fleet.containers(SERVICE, [victim]),
        LIMIT,
        f"{victim} Ready and clean",
        interval=0.05,
    )
    done = time.monotonic()
    time.sleep(1)  # a second more of watching: a late route or a late Ready with a stale copy
    steps.stop()
    moments = {**steps.first, **log_moments(log_path, offset, wall_to_mono)}
    out: dict[str, float | str] = {"agent started (process spawned)": 0.0}
    out.update({name: at - agent_start for name, at in moments.items()})
    out["power-on (link up)"] = power_on - agent_start
    out["Ready and clean (the benchmark's wait)"] = done - agent_start
    out["total from power-on"] = done - power_on
    out["load average (1 min) at power-on"] = f"{load:.1f}"
    out["stale copy routed (sightings)"] = str(len(routed_stale))
    out["Ready while a stale copy ran (sightings)"] = str(len(ready_while_stale))
    return out


def drop_bytecode() -> int:
    """Remove meshop's compiled bytecode (this checkout's ``__pycache__`` files of meshop/ only); how many."""
    removed = 0
    for cached in (REPO / "meshop").rglob("__pycache__/*.pyc"):
        cached.unlink(missing_ok=True)
        removed += 1
    return removed


def table(rounds: list[dict[str, float | str]]) -> str:
    names: list[str] = []
    for result in rounds:
        names += [n for n in result if n not in names]
    numeric = sorted(
        (n for n in names if all(isinstance(r.get(n, math.nan), float) for r in rounds)),
        key=lambda n: statistics.median([float(r.get(n, math.nan)) for r in rounds]),
    )
    other = [n for n in names if n not in numeric]
    head = f"{'step (s from the agent start)':<52}" + "".join(f"{f'run {i + 1}':>9}" for i in range(len(rounds)))
    lines = [head]
    for name in numeric + other:
        cells = []
        for result in rounds:
            value = result.get(name, "-")
            cells.append(f"{value:>9.2f}" if isinstance(value, float) and not math.isnan(value) else f"{value!s:>9}")
        lines.append(f"{name:<52}" + "".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--logs", type=Path, help="copy every member's logs here before the teardown")
    parser.add_argument("--ab-bytecode", action="store_true", help="odd rounds without meshop's bytecode")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mret-", dir="/tmp"))
    rounds = []
    try:
        with session_fleet(root, grace=args.grace) as fleet:
            fleet.apply(service_doc(SERVICE, REPLICAS, HOST))
            wait_for(lambda: fleet.service_ready(SERVICE, REPLICAS), LIMIT, "the service Ready", interval=0.25)
            for i in range(args.repeat):
                victim = max(c["node"] for c in fleet.containers(SERVICE) if c["node"] != fleet.node_names[0])
                without = args.ab_bytecode and i % 2 == 0
                if without:
                    drop_bytecode()
                try:
                    rounds.append(one_round(fleet, victim))
                finally:
                    compile_bytecode()
                rounds[-1]["agent's bytecode"] = "none" if without else "compiled"
                print(table(rounds[-1:]), flush=True)
            if args.logs:
                for found in root.glob("*/*.log"):
                    (args.logs / found.parent.name).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(found, args.logs / found.parent.name / found.name)
    finally:
        if not (root / "fleet.json").exists():
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n3 nodes, {REPLICAS} replicas, grace {args.grace:g} s; polled every {POLL * 1000:.0f} ms")
    print(table(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
