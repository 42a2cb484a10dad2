"""Failover of a stateful service on the real fleet: power-off of its node to the service answering again.

A fleet of its own (tests/support/fleet.py: 3 nodes, a gateway, network namespaces). A busybox service
with a stateful volume (a counter appended every 100 ms, served by httpd behind a route, backed up every
10 s to a local-path restic repository, ``failover: restore-latest``) runs on one node. The benchmark
waits for a backup, powers the node off (link down, every process SIGKILLed) and measures, polling
every 100 ms:

* power-off -> the node NotReady (the controller's grace period: 10 s after its agent's check fails);
* power-off -> a copy running on another node (+ the lock: the old session's TTL end, up to 2 x 10 s in
  Consul, then its 15 s lock-delay; + the restore);
* power-off -> the route answering 200 through the gateway again;
* the restored snapshot's age (the data-loss window, from the ``Restored`` event).

    .venv/bin/python benchmarks/stateful_failover.py [--repeat 1]

The fleet is torn down at the end (by PID; ``python -m tests.support.fleet down --root ROOT`` if not).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fleet import GATEWAY_PORT, IMAGE, Fleet, http_get, session_fleet, wait_for  # noqa: E402

PASSWORD = "bench-restic-password"
SCRIPT = (
    "i=$(wc -l < /data/log 2>/dev/null || echo 0); "
    "(while :; do i=$((i+1)); echo $i >> /data/log; sleep 0.1; done) & exec httpd -f -p 80 -h /data"
)


def doc(name: str, repo: Path) -> dict[str, object]:
    backup = {"repository": str(repo), "passwordSecret": "restic", "every": "10s", "keep": {"last": 5}}
    return {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "image": IMAGE,
            "command": ["/bin/sh"],
            "args": ["-c", SCRIPT],
            "ports": [{"name": "http", "container": 80}],
            "route": {"host": f"{name}.fleet.test", "port": "http"},
            "health": {"http": {"path": "/log", "port": "http"}, "interval": "1s", "timeout": "1s"},
            "failover": "restore-latest",
            "volumes": [{"name": "data", "mountPath": "/data", "stateful": {"backup": backup}}],
        },
    }


def answers(fleet: Fleet, name: str) -> bool:
    return http_get(fleet.gateway.addr, GATEWAY_PORT, f"{name}.fleet.test", "/log", 2)[0] == 200


def running_on(fleet: Fleet, name: str) -> list[str]:
    return sorted(c["node"] for c in fleet.containers(name))


def loss_window(fleet: Fleet, node: str) -> float | None:
    found = fleet.consul_get(f"/v1/kv/{fleet.prefix}/events/agent-{node}/?recurse=true") or []
    for entry in found:
        event = json.loads(base64.b64decode(entry["Value"]))
        match = re.search(r"data-loss window (\d+)s", event.get("message", ""))
        if event.get("kind") == "Restored" and match:
            return float(match.group(1))
    return None


def one_run(fleet: Fleet, number: int) -> dict[str, float]:
    name = f"sfo{number}"
    fleet.consul_put(f"/v1/kv/{fleet.prefix}/secrets/{name}/restic", PASSWORD)  # the management token
    fleet.apply(doc(name, fleet.root / f"repo-{name}"))
    wait_for(lambda: answers(fleet, name), 120, f"{name} answering", interval=0.25)
    # one listing may miss it (an engine slow to answer on a loaded machine): look until it is there
    holder = wait_for(lambda: running_on(fleet, name), 60, f"{name} running", interval=0.25)[0]
    wait_for(
        lambda: ((fleet.kv(f"backups/{holder}/{name}") or {}).get("volumes") or [{}])[0].get("snapshot"),
        60,
        "a first backup",
        interval=0.5,
    )
    began = time.monotonic()
    fleet.power_off(holder)
    marks: dict[str, float] = {}
    deadline = began + 300
    while time.monotonic() < deadline and len(marks) < 3:
        now = time.monotonic() - began
        if "not_ready" not in marks and fleet.node_state(holder) == "NotReady":
            marks["not_ready"] = now
        if "running" not in marks and running_on(fleet, name):
            marks["running"] = now
        if "answering" not in marks and "running" in marks and answers(fleet, name):
            marks["answering"] = now
        time.sleep(0.1)
    new = running_on(fleet, name)
    marks["loss_window"] = (loss_window(fleet, new[0]) if new else None) or -1.0
    fleet.power_on(holder)
    wait_for(lambda: fleet.nodes_ready(), 120, "every node Ready again", interval=0.5)
    fleet.cli("delete", "service", name, check=False)
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mbench-", dir="/tmp"))
    runs = []
    with session_fleet(root) as fleet:
        for number in range(args.repeat):
            marks = one_run(fleet, number)
            print(json.dumps({k: round(v, 1) for k, v in marks.items()}), flush=True)
            runs.append(marks)
    for key in ("not_ready", "running", "answering", "loss_window"):
        values = [r[key] for r in runs if key in r]
        if values:
            print(f"{key:>12}: median {statistics.median(values):6.1f} s  (of {len(values)})")


if __name__ == "__main__":
    main()
