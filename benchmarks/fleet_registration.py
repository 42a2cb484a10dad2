"""How long a newly placed replica waits for its Consul registration under default-deny ACLs.

On the network-namespace fleet (one Consul server on gw, client agents on n1 and n2, every daemon on its
role token, ``acl sync --watch`` on gw), ``--cycles`` times: apply a 2-replica service (spread), then
measure from the apply to (a) both containers running and (b) both replicas registered in Consul and
passing; then delete it. (b) - (a) is what the registration adds after the container runs: the agent's
first registration is refused until ``acl sync`` widened its node's policy and the node's Consul client
dropped its cached policy (``policy_ttl`` 5 s), then retried on the agent's schedule.

    .venv/bin/python benchmarks/fleet_registration.py [--cycles 5]   (root; ~2-3 min)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fleet import DNS_ZONE, Fleet, scratch_fleet, service_doc, wait_for  # noqa: E402


def registered(fleet: Fleet, service: str) -> set[str]:
    entries = fleet.consul_get(f"/v1/health/service/{service}?passing=1") or []
    return {e["Node"]["Node"] for e in entries}


def cycle(fleet: Fleet, name: str) -> tuple[float, float]:
    """(apply -> both containers running, apply -> both registered and passing), seconds."""
    applied = time.monotonic()
    fleet.apply(service_doc(name, 2, f"{name}.{DNS_ZONE}"))
    wait_for(lambda: len(fleet.containers(name)) == 2, 120, f"{name}: two containers", 0.05)
    running = time.monotonic() - applied
    wait_for(lambda: registered(fleet, name) == {"n1", "n2"}, 120, f"{name}: both registered", 0.05)
    passing = time.monotonic() - applied
    fleet.cli("delete", "service", name)
    wait_for(lambda: not fleet.containers(name) and not registered(fleet, name), 120, f"{name} gone", 0.25)
    return running, passing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    with scratch_fleet("mfr-", nodes=2) as fleet:
        rows = [cycle(fleet, f"reg{i}") for i in range(args.cycles)]
    print(f"{'cycle':>5} {'running s':>10} {'registered s':>13} {'added s':>8}")
    for i, (running, passing) in enumerate(rows):
        print(f"{i:>5} {running:>10.2f} {passing:>13.2f} {passing - running:>8.2f}")
    added = [p - r for r, p in rows]
    print(f"added by the registration: median {statistics.median(added):.2f} s, max {max(added):.2f} s")


if __name__ == "__main__":
    main()
