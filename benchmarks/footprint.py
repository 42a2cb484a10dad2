"""Idle memory of meshop's daemons: a controller and a node agent running 10 services, then idle.

    .venv/bin/python benchmarks/footprint.py [--services 10] [--settle 20] [--before DIR]

Starts its own Consul (dev agent), ``meshop controller run`` and ``meshop agent run`` as real processes
(``python -m meshop``) on the shared Docker engine, applies ``--services`` busybox httpd services, waits
until every one is Ready, lets everything idle for ``--settle`` seconds and reads each process's resident
memory (``VmRSS`` in /proc) and the modules it has loaded (``-X importtime`` on its stderr). With
``--before DIR`` (an older meshop checkout) the same runs with ``PYTHONPATH=DIR`` in the same session.
Consul itself is shown for scale. Everything started is stopped by PID; the containers of the run's
node are removed by their labels.

Goal from issue 17: agent ≤ 40 MB, controller ≤ 40 MB idle RSS with 10 services.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.procs import Process, wait_until  # noqa: E402

IMAGE = "meshop-test/busybox:1"
HEAVY = ("docker", "requests", "urllib3", "rich", "jsonschema", "paramiko", "prometheus_client", "consul", "yaml")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loaded_packages(log: Path) -> tuple[int, list[str]]:
    """Modules imported (``-X importtime`` lines in the log) and which of the heavy libraries are among them."""
    names = [
        line.split("|")[-1].strip()
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("import time:") and "|" in line and "self [us]" not in line
    ]
    # a package counts when one of its submodules loaded: a failed ``import paramiko`` (the Docker driver
    # blocks it) still prints a line for the top-level name
    tops = {name.split(".")[0] for name in names if "." in name}
    return len(names), [lib for lib in HEAVY if lib in tops]


def meshop(tree: Path | None, consul: ConsulServer, prefix: str, args: list[str], log: Path) -> Process:
    env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree) if tree else ""}
    command = [
        sys.executable,
        "-P",
        "-X",
        "importtime",
        "-m",
        "meshop",
        "--consul-addr",
        consul.addr,
        "--prefix",
        prefix,
    ]
    return Process([*command, *args], log, env=env)


def consul_get(consul: ConsulServer, path: str) -> object:
    import urllib.request

    with urllib.request.urlopen(f"{consul.url}{path}", timeout=5) as response:
        return json.loads(response.read() or b"null")


def ready_count(consul: ConsulServer, prefix: str) -> int:
    entries = consul_get(consul, f"/v1/kv/{prefix}/status/services/?recurse") or []
    count = 0
    for entry in entries:  # type: ignore[union-attr]
        import base64

        status = json.loads(base64.b64decode(entry["Value"]))
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        count += conditions.get("Ready") == "True"
    return count


def remove_node_containers(node: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=meshop.node={node}"], capture_output=True, text=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def measure(tree: Path | None, consul: ConsulServer, services: int, settle: float, workdir: Path) -> dict:
    prefix = f"fp-{secrets.token_hex(3)}"
    node = f"fp-{secrets.token_hex(3)}"
    docs = workdir / prefix
    docs.mkdir()
    for i in range(services):
        (docs / f"s{i}.yaml").write_text(
            "apiVersion: meshop.io/v1alpha1\nkind: Service\n"
            f"metadata: {{name: s{i}}}\n"
            f"spec:\n  image: {IMAGE}\n"
            '  command: ["/bin/httpd"]\n  args: ["-f", "-p", "8080", "-h", "/www"]\n'
            "  ports: [{name: http, container: 8080}]\n"
            "  health: {http: {path: /, port: http}, interval: 2s}\n"
            "  resources: {memory: 16Mi, cpus: 0.01}\n"
        )
    controller = meshop(
        tree, consul, prefix, ["controller", "run", "--metrics-addr", "127.0.0.1:0"], workdir / f"{prefix}-ctl.log"
    )
    agent_args = ["agent", "run", "--node", node, "--advertise-addr", "127.0.0.1", "--metrics-addr", "127.0.0.1:0"]
    agent_args += ["--state-dir", str(workdir / f"{prefix}-state"), "--stop-grace", "1"]
    agent = meshop(tree, consul, prefix, agent_args, workdir / f"{prefix}-agent.log")
    procs = [controller.start(), agent.start()]
    try:
        env = {**os.environ, "PYTHONPATH": str(tree) if tree else ""}
        command = [sys.executable, "-P", "-m", "meshop", "--consul-addr", consul.addr, "--prefix", prefix]
        applied = subprocess.run(
            [*command, "apply", "-f", str(docs)],
            env=env,
            capture_output=True,
            text=True,
        )
        if applied.returncode != 0:
            raise RuntimeError(applied.stderr)
        wait_until(lambda: ready_count(consul, prefix) >= services, 180, interval=0.5, what=f"{services} Ready")
        time.sleep(settle)
        ctl_mods, ctl_heavy = loaded_packages(controller.log_path)
        agent_mods, agent_heavy = loaded_packages(agent.log_path)
        return {
            "controller_mb": rss_mb(controller.pid),
            "agent_mb": rss_mb(agent.pid),
            "consul_mb": rss_mb(consul.process.pid),  # type: ignore[union-attr]
            "controller_modules": ctl_mods,
            "agent_modules": agent_mods,
            "controller_heavy": ctl_heavy,
            "agent_heavy": agent_heavy,
        }
    finally:
        for proc in procs:
            proc.stop()
        remove_node_containers(node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--settle", type=float, default=20.0, help="idle seconds before reading memory")
    parser.add_argument("--before", type=Path, help="an older meshop checkout to measure in the same run")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("before", args.before.resolve())] if args.before else []
    trees.append(("after" if args.before else "this tree", None))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="meshop-footprint-") as tmp:
        consul = ConsulServer(Path(tmp) / "consul").start()
        try:
            for label, tree in trees:
                results[label] = measure(tree, consul, args.services, args.settle, Path(tmp))
                print(f"measured {label}", flush=True)
        finally:
            consul.stop()
    print(f"\nidle resident memory with {args.services} services Ready, after {args.settle:.0f}s idle (MB)")
    labels = list(results)
    print(f"{'':<22}" + "".join(f"{label:>12}" for label in labels) + ("   after/before" if len(labels) == 2 else ""))
    for key, name in (("controller_mb", "controller"), ("agent_mb", "agent"), ("consul_mb", "consul (for scale)")):
        cells = [results[label][key] for label in labels]
        ratio = f"   {cells[1] / cells[0]:>8.2f}x" if len(cells) == 2 else ""
        print(f"{name:<22}" + "".join(f"{c:>12.1f}" for c in cells) + ratio)
    for key, name in (("controller_modules", "controller modules"), ("agent_modules", "agent modules")):
        print(f"{name:<22}" + "".join(f"{results[label][key]:>12}" for label in labels))
    for label in labels:
        r = results[label]
        print(f"{label}: controller loads {', '.join(r['controller_heavy'])}")
        print(f"{label}: agent loads {', '.join(r['agent_heavy'])}")
    last = results[labels[-1]]
    print(
        f"\ngoal agent <= 40 MB: {'yes' if last['agent_mb'] <= 40 else 'NO'} ({last['agent_mb']:.1f});  "
        f"controller <= 40 MB: {'yes' if last['controller_mb'] <= 40 else 'NO'} ({last['controller_mb']:.1f})"
    )


if __name__ == "__main__":
    main()
