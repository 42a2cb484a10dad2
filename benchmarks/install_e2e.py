"""Wall times of docs/install.md on three Debian 12 systemd hosts: each command cold and re-run.

    .venv/bin/python benchmarks/install_e2e.py [--cold]

Runs the end-to-end install test (tests/install/test_install_e2e.py, what `make test-install` runs) and
prints the times it recorded in .dev/install-e2e/timings.json. ``--cold`` first removes the cached VPS
image and root filesystem (.dev/vps/), so the debootstrap build is timed too (~3 min). Needs root, like
the test (containers, a dockerd per node).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="Rebuild the VPS root filesystem first (debootstrap).")
    opts = parser.parse_args()
    if opts.cold:
        images = subprocess.run(
            ["docker", "images", "-q", "meshop-test/systemd-vps"], capture_output=True, text=True, check=True
        ).stdout.split()
        for image in sorted(set(images)):
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=True)
        shutil.rmtree(REPO / ".dev" / "vps", ignore_errors=True)
    subprocess.run(["bash", str(REPO / "scripts" / "build-wheels.sh")], check=True, capture_output=True)
    started = time.monotonic()
    test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "tests/install/test_install_e2e.py"],
        cwd=REPO, env={**os.environ, "MESHOP_INSTALL_E2E": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    total = time.monotonic() - started
    timings = json.loads((REPO / ".dev" / "install-e2e" / "timings.json").read_text())
    width = max(map(len, timings))
    for label, seconds in timings.items():
        print(f"{label:<{width}}  {seconds:>7.1f} s")
    print(f"{'whole test (pytest)':<{width}}  {total:>7.1f} s   {'passed' if test.returncode == 0 else 'FAILED'}")
    if test.returncode != 0:
        print(test.stdout[-4000:], test.stderr[-2000:], sep="\n", file=sys.stderr)
    return test.returncode


if __name__ == "__main__":
    sys.exit(main())
