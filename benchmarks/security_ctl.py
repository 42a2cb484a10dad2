"""The controller/gateway attacks of tests/security/, here and against an older meshop: how many, how long.

    .venv/bin/python benchmarks/security_ctl.py [--before DIR] [--repeat 1]

(``benchmarks/security_suite.py`` counts and times the whole attack suite.)

Runs the attack tests of tests/security/ that cover node records, hostnames, names, bounds and terminal
output (the controller, gateway and CLI side) in a fresh pytest process each time, and prints the number
of attack cases, how many passed, and the wall time of the run (pytest start-up and the session's Consul
included: what the suite adds to ``make test``). With ``--before DIR`` (``git archive <commit> | tar -x -C
DIR``; link ``DIR/.dev/bin`` to the project's and ``DIR/meshop/crds`` to ``../crds``) the same tests run
against that older meshop (``PYTHONPATH=DIR``), where every one of them is expected to fail.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("test_node_records.py", "test_route_ownership.py", "test_names.py", "test_bounds.py", "test_output_hygiene.py")
SUPPORT = ("__init__.py", "conftest.py", "fleet.py")


def run_suite(cwd: Path, env: dict[str, str]) -> tuple[int, int, float]:
    """(collected, passed, wall seconds) of one pytest run of FILES."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(f"tests/security/{f}" for f in FILES)]
    started = time.monotonic()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - started
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", tail)}
    total = sum(counts.values())
    return total, counts.get("passed", 0), wall


def prepare_before(before: Path) -> None:
    """Copy this checkout's attack tests into the older tree (its own code stays as it was)."""
    target = before / "tests" / "security"
    target.mkdir(parents=True, exist_ok=True)
    for name in (*SUPPORT, *FILES):
        shutil.copy(ROOT / "tests" / "security" / name, target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older meshop tree to run the same attacks against")
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    rows = [("this checkout", ROOT, dict(os.environ))]
    if options.before:
        prepare_before(options.before)
        rows.append(("before", options.before, {**os.environ, "PYTHONPATH": str(options.before)}))
    print(f"{'meshop':<16}{'attack cases':>14}{'passed':>8}{'wall (median)':>16}")
    for label, cwd, env in rows:
        runs = [run_suite(cwd, env) for _ in range(options.repeat)]
        total, passed = runs[-1][0], runs[-1][1]
        wall = statistics.median(r[2] for r in runs)
        print(f"{label:<16}{total:>14}{passed:>8}{wall:>15.1f}s")


if __name__ == "__main__":
    main()
