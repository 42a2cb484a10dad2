"""Issue 12's agent-side figures, measured on real processes (Consul, ``meshop controller run``,
``meshop agent run``, Docker):

* containers kept after Consul comes back empty: a dev Consul restarted (every key gone) and a
  ``kv delete -recurse`` of the prefix, with N services running; the share of the very same containers
  still running after the agent has had ten resync periods to act;
* crash loop visible: seconds from a container's first ``die`` event (exit code 3, in a loop) until
  ``meshop status -o json`` shows the service as ``CrashLoopBackOff`` / not Healthy;
* scaling 1 -> 3 -> 1: whether the original container survives.

Run it against another checkout for a "before" figure: ``PYTHONPATH=/path/to/checkout python
benchmarks/failure_safety.py`` (the agent and controller processes inherit it). Everything it starts is
stopped by PID; containers are removed by their node label.

    .venv/bin/python benchmarks/failure_safety.py [--services 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

import docker  # noqa: E402

from meshop.cli.main import run as meshop_run  # noqa: E402
from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from tests.integration.agent.helpers import agent_process  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.meshop_proc import meshop_process  # noqa: E402
from tests.support.procs import wait_until  # noqa: E402

IMAGE = "meshop-test/busybox:1"
PREFIX = "bench"
SLEEPER = {"image": IMAGE, "command": ["/bin/sleep"], "args": ["3600"]}


def cli(addr: str, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = meshop_run(["--consul-addr", addr, "--prefix", PREFIX, *args])
    return code, out.getvalue()


def apply(addr: str, workdir: Path, name: str, spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    path = workdir / f"{name}-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(doc))
    code, out = cli(addr, "apply", "-f", str(path))
    if code != 0:
        raise RuntimeError(f"apply {name} failed: {out}")


class Fleet:
    """A dev Consul, a controller and one agent (node ``b<random>``), all real processes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.node = f"b{secrets.token_hex(3)}"
        self.consul = ConsulServer(workdir / "consul").start()
        self.procs: list[Any] = []
        self.client = docker.from_env()

    def start(self) -> Fleet:
        ctl = meshop_process(
            self.consul.addr,
            PREFIX,
            ["controller", "run", "--id", f"c-{self.node}", "--metrics-addr", "127.0.0.1:0", "--resync", "1"],
            self.workdir / "controller.log",
        )
        agent = agent_process(self.node, self.consul.addr, PREFIX, self.workdir, "--resync", "1")
        self.procs = [ctl.start(), agent.start()]
        return self

    def running(self, service: str | None = None) -> set[str]:
        labels = [f"meshop.node={self.node}"] + ([f"meshop.service={service}"] if service else [])
        return {c["Id"] for c in self.client.api.containers(filters={"label": labels, "status": "running"})}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.consul.stop()
        for item in self.client.api.containers(all=True, filters={"label": f"meshop.node={self.node}"}):
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_container(item["Id"], force=True, v=True)
        self.client.close()


def kept_after_empty_kv(services: int, how: str) -> float:
    with tempfile.TemporaryDirectory(prefix="meshop-bench-") as tmp:
        fleet = Fleet(Path(tmp)).start()
        try:
            for i in range(services):
                apply(
                    fleet.consul.addr, Path(tmp), f"s{i}", {"image": IMAGE, "command": ["/bin/sleep"], "args": ["3600"]}
                )
            wait_until(lambda: len(fleet.running()) == services, 60, what="every service running")
            before = fleet.running()
            if how == "restart":
                fleet.consul.stop()
                fleet.consul.start()
            else:
                KVStore(ConsulConfig.from_env({}, addr=fleet.consul.addr, prefix=PREFIX)).delete_tree("")
            time.sleep(10.0)  # ten resync periods of the agent (--resync 1): it had every chance to act
            return 100.0 * len(before & fleet.running()) / len(before)
        finally:
            fleet.stop()


def crash_loop_visible() -> float:
    with tempfile.TemporaryDirectory(prefix="meshop-bench-") as tmp:
        fleet = Fleet(Path(tmp)).start()
        dies: list[float] = []
        events = fleet.client.events(decode=True, filters={"label": [f"meshop.node={fleet.node}"], "event": "die"})

        def follow() -> None:
            with contextlib.suppress(Exception):
                for _ in events:
                    dies.append(time.monotonic())

        threading.Thread(target=follow, daemon=True).start()
        try:
            wait_until(lambda: cli(fleet.consul.addr, "status", "-o", "json")[0] in (0, 1), 20, what="status")
            time.sleep(2.0)  # the agent has registered its node
            spec = {"image": IMAGE, "command": ["/bin/sh"], "args": ["-c", "sleep 0.3; exit 3"]}
            apply(fleet.consul.addr, Path(tmp), "crasher", spec)
            wait_until(lambda: dies, 30, what="the first crash")

            def shown() -> bool:
                rows = json.loads(cli(fleet.consul.addr, "status", "-o", "json")[1] or "{}").get("services", [])
                row = next((r for r in rows if r["name"] == "crasher"), None)
                return bool(row and row["health"] != "Healthy" and row.get("reason") in ("CrashLoopBackOff", "Failed"))

            try:
                wait_until(shown, 60, interval=0.1, what="the crash loop in meshop status")
            except TimeoutError:
                return float("inf")
            return time.monotonic() - dies[0]
        finally:
            events.close()
            fleet.stop()


def scale_keeps_original() -> bool:
    with tempfile.TemporaryDirectory(prefix="meshop-bench-") as tmp:
        fleet = Fleet(Path(tmp)).start()
        try:
            base = {"image": IMAGE, "command": ["/bin/sleep"], "args": ["3600"], "placement": {"spread": False}}
            apply(fleet.consul.addr, Path(tmp), "web", {**base, "replicas": 1})
            wait_until(lambda: len(fleet.running("web")) == 1, 30, what="one replica")
            original = fleet.running("web")
            for count in (3, 1):
                apply(fleet.consul.addr, Path(tmp), "web", {**base, "replicas": count})
                wait_until(lambda count=count: len(fleet.running("web")) == count, 30, what=f"{count} replicas")
                time.sleep(2.0)
            return fleet.running("web") == original
        finally:
            fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import meshop

    print(f"meshop from {Path(meshop.__file__).parent}")
    for how in ("restart", "delete-recurse"):
        print(
            f"containers kept after an empty KV ({how}, {args.services} services): "
            f"{kept_after_empty_kv(args.services, how):.0f} %"
        )
    times = [crash_loop_visible() for _ in range(args.repeat)]
    print(
        "crash loop visible in meshop status after the first crash: "
        + ", ".join("never (60 s)" if t == float("inf") else f"{t:.1f} s" for t in times)
        + (f" (median {statistics.median(times):.1f} s)" if all(t != float("inf") for t in times) else "")
    )
    print(f"scaling 1 -> 3 -> 1 keeps the original container: {'yes' if scale_keeps_original() else 'no'}")


if __name__ == "__main__":
    main()
