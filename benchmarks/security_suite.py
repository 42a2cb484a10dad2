"""What the attack suite costs: how many attack cases tests/security/ holds and how long it runs.

    .venv/bin/python benchmarks/security_suite.py [--runs 1]

Collects the suite (cases per file), then runs it ``--runs`` times as ``python -m pytest tests/security``
(real Consul, Docker, agents and Caddy, as ``make test`` runs it) and prints the wall time of each run
and each file's share (pytest's own durations: setup + call + teardown of its cases).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest(*args: str) -> str:
    command = [sys.executable, "-m", "pytest", "tests/security", "-p", "no:cacheprovider", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"tests/security failed:\n{done.stdout[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    runs = parser.parse_args().runs
    cases = Counter(line.split("::")[0] for line in pytest("--collect-only", "-q").splitlines() if "::" in line)
    print(f"attack cases: {sum(cases.values())} in {len(cases)} files")
    for path, count in sorted(cases.items()):
        print(f"  {Path(path).name:32} {count:3d}")
    for run in range(1, runs + 1):
        start = time.monotonic()
        out = pytest("-q", "--durations=0")
        wall = time.monotonic() - start
        per_file: dict[str, float] = defaultdict(float)
        for match in re.finditer(r"^([0-9.]+)s (?:setup|call|teardown)\s+(\S+?)::", out, re.M):
            per_file[Path(match.group(2)).name] += float(match.group(1))
        print(f"run {run}: {wall:.1f} s wall (pytest start-up and the session's Consul included)")
        for name, seconds in sorted(per_file.items(), key=lambda item: -item[1]):
            print(f"  {name:32} {seconds:5.1f} s")


if __name__ == "__main__":
    main()
