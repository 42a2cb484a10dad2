"""How long meshop's CLI takes, and how fast ``meshop apply`` gets containers running, against its peers.

    .venv/bin/python benchmarks/cli_latency.py [--before DIR] [--repeat 15] [--e2e] [--sizes 10,50]

Part 1, command latency (always): wall time of one command, median of ``--repeat`` runs, for the
installed console script (``.venv/bin/meshop``) and ``python -m meshop``: ``version``,
``validate -f one.yaml``, ``apply -f one.yaml`` (a real write: the document changes every run) and
``status`` against a real Consul this script starts, next to ``python -c pass`` (the interpreter's own
floor). With ``--before DIR`` (a checkout of an older meshop, e.g. ``git archive 8250582 | tar -x -C DIR``)
the same commands run with ``PYTHONPATH=DIR`` in the same run, and the table shows before/after.

Part 2, ``--e2e`` (needs root: it starts its own isolated Docker engine on its own bridge, stopped by
PID at the end; the shared engine is never touched): a meshop controller and agent on that engine, then

* apply-1 → running: ``meshop apply -f one.yaml`` until its container runs, vs ``docker run -d``;
* apply of N services (``-f DIR``) until all run, vs ``docker-compose up -d`` and ``docker stack deploy``
  (Swarm, initialised on the isolated engine only).

Prints medians and ratios (meshop / peer: below 1 means meshop is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.consul_server import ConsulServer  # noqa: E402

PYTHON = sys.executable
SCRIPT = str(Path(sys.executable).with_name("meshop"))
IMAGE = "meshop-test/busybox:1"


def service_yaml(name: str, tag: str, port: int = 8080) -> str:
    return (
        "apiVersion: meshop.io/v1alpha1\nkind: Service\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  image: {IMAGE}\n"
        '  command: ["/bin/httpd"]\n'
        f'  args: ["-f", "-p", "{port}", "-h", "/www"]\n'
        f"  env: [{{name: RUN, value: '{tag}'}}]\n"
        f"  ports: [{{name: http, container: {port}}}]\n"
    )


def timed_run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    # cwd: not the checkout, whose meshop/ would shadow PYTHONPATH for ``python -m meshop``
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def environment(tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def command_latency(consul: ConsulServer, trees: dict[str, Path | None], repeat: int, workdir: Path) -> dict:
    """{(label, launcher, command): median seconds} for every tree, interleaved so load hits all alike."""
    one = workdir / "one.yaml"
    launchers = {"console script": [SCRIPT], "python -m meshop": [PYTHON, "-m", "meshop"]}
    results: dict[tuple[str, str, str], list[float]] = {}
    floor: list[float] = []
    for i in range(repeat):
        floor.append(timed_run([PYTHON, "-c", "pass"], environment(None)))
        for label, tree in trees.items():
            env = environment(tree)
            for launcher, base in launchers.items():
                one.write_text(service_yaml("latency", f"{label}-{launcher}-{i}"))
                common = [*base, "--consul-addr", consul.addr, "--prefix", f"lat-{label.replace(' ', '')}"]
                commands = {
                    "version": [*base, "version"],
                    "validate -f one.yaml": [*base, "validate", "-f", str(one)],
                    "apply -f one.yaml": [*common, "apply", "-f", str(one)],
                    "status": [*common, "status"],
                }
                for name, argv in commands.items():
                    results.setdefault((label, launcher, name), []).append(timed_run(argv, env))
    out = {key: statistics.median(values) for key, values in results.items()}
    out[("floor", "python -c pass", "")] = statistics.median(floor)
    return out


def print_latency(results: dict, trees: dict[str, Path | None], repeat: int) -> None:
    floor = results[("floor", "python -c pass", "")]
    print(f"\ncommand latency, median of {repeat} runs (ms); `python -c pass` takes {floor * 1000:.0f} ms here")
    labels = list(trees)
    header = "".join(f"{label:>12}" for label in labels)
    ratio = "   after/before" if len(labels) == 2 else ""
    print(f"{'launcher':<18}{'command':<24}{header}{ratio}")
    for launcher in ("console script", "python -m meshop"):
        for name in ("version", "validate -f one.yaml", "apply -f one.yaml", "status"):
            cells = [results[(label, launcher, name)] for label in labels]
            line = "".join(f"{c * 1000:>12.0f}" for c in cells)
            if len(cells) == 2:
                line += f"   {cells[1] / cells[0]:>8.2f}x"
            print(f"{launcher:<18}{name:<24}{line}")


@contextlib.contextmanager
def consul_server(workdir: Path) -> Iterator[ConsulServer]:
    server = ConsulServer(workdir / "consul").start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older meshop checkout to measure in the same run")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    trees: dict[str, Path | None] = {}
    if args.before:
        trees["before"] = args.before.resolve()
    trees["after" if args.before else "this tree"] = None
    with tempfile.TemporaryDirectory(prefix="meshop-cli-") as tmp, consul_server(Path(tmp)) as consul:
        results = command_latency(consul, trees, args.repeat, Path(tmp))
    print_latency(results, trees, args.repeat)


if __name__ == "__main__":
    main()
