"""How long meshop's CLI takes, and how fast ``meshop apply`` gets containers running, against its peers.

    .venv/bin/python benchmarks/cli_latency.py [--before DIR] [--installed] [--repeat 15] [--e2e] [--sizes 10,50]

Part 1, command latency (always): wall time and CPU time of one command, median of ``--repeat`` runs,
for the console script and ``python -m meshop``: ``version``, ``validate -f one.yaml``,
``apply -f one.yaml`` (a real write: the document changes every run) and ``status`` against a real
Consul this script starts, next to ``python -c pass`` (the interpreter's own floor). With ``--before DIR``
(a checkout of an older meshop, e.g. ``git archive 8250582 | tar -x -C DIR``) the same commands run
with ``PYTHONPATH=DIR`` in the same run, and the table shows before/after.

The dev venv's columns run each tree's console script as pip would write it into ``.venv/bin`` (from
that tree's own entry point in its ``setup.cfg``: the entry point moved, so ``.venv/bin/meshop`` of
this checkout cannot run an older tree). The dev venv installs meshop editable, and its finder
(``__editable___meshop_0_1_0_finder``) costs every command ~25 ms of imports (pathlib, re, enum...)
before meshop runs. ``--installed`` therefore also measures meshop as a user gets it from pip: each
tree is copied and ``pip install --no-deps --no-build-isolation``-ed (not editable; pip compiles the
bytecode) into a fresh venv of its own, whose dependencies come from the dev venv's site-packages by
one plain path line in a ``.pth`` file (a path line costs no import); rows ``installed ...``, with that
venv's own ``python -c pass``.

Both trees run from compiled bytecode, as a meshop installed by pip does (pip compiles on install; this
machine sets ``PYTHONDONTWRITEBYTECODE``, so without it every command would compile meshop's sources
again, some 70 ms): this tree's ``meshop/`` is compiled in place, the ``--before`` tree's ``meshop/`` and
``crds/`` are copied to a temporary directory and compiled there (the checkout itself is not written).
``--source-only`` measures without compiled bytecode (the figures of earlier runs of this script).

Part 2, ``--e2e`` (needs root: it starts its own isolated Docker engine on its own bridge, stopped by
PID at the end; the shared engine is never touched): a meshop controller and agent on that engine, then

* apply-1 → running: ``meshop apply -f one.yaml`` until its container runs, vs ``docker run -d``;
* apply of N services (``-f DIR``) until all run, vs ``docker-compose up -d`` and ``docker stack deploy``
  (Swarm, initialised on the isolated engine only).

Prints medians and ratios (meshop / peer: below 1 means meshop is faster).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.procs import Process, wait_until  # noqa: E402

PYTHON = sys.executable
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


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from the child's rusage) of one command.

    The CPU time is what the command costs whatever else runs on the machine; wall time is what a user
    waits, and on a busy machine it is mostly waiting for a core."""
    started = time.perf_counter()
    # cwd: not the checkout, whose meshop/ would shadow PYTHONPATH for ``python -m meshop``
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode()[-400:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def environment(tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


# (argv of a launcher, environment); the launcher's command line is that argv + meshop's arguments
Launcher = tuple[list[str], dict[str, str]]
PACKAGING = ("setup.py", "setup.cfg", "pyproject.toml", "README.md")
COMMANDS = ("version", "validate -f one.yaml", "apply -f one.yaml", "status")


def console_script(tree: Path | None, workdir: Path) -> str:
    """The console script pip would write for ``tree`` into the dev venv: its own setup.cfg's entry point
    (``meshop.cli.main:main`` before the fast path, ``meshop.cli.fast:main`` with it, ``meshop.cli.entry:main``
    since fast and main no longer import each other), run by this Python."""
    config = configparser.ConfigParser()
    config.read((tree or REPO) / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].splitlines()
    entries = {name.strip(): target.strip() for name, _, target in (line.partition("=") for line in lines) if target}
    module, func = entries["meshop"].split(":")
    path = workdir / f"meshop-{secrets.token_hex(3)}"
    path.write_text(
        f"#!{PYTHON}\nimport sys\nfrom {module} import {func}\n"
        f"if __name__ == '__main__':\n    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n    sys.exit({func}())\n"
    )
    path.chmod(0o755)
    return str(path)


def installed_venv(tree: Path | None, workdir: Path) -> Path:
    """A fresh venv with ``tree`` pip-installed from a copy (the checkout is not written), not editable,
    bytecode compiled by pip; the dependencies come from the dev venv's site-packages (a .pth path line)."""
    name = secrets.token_hex(3)
    source, venv = workdir / f"src-{name}", workdir / f"venv-{name}"
    for part in ("meshop", "crds"):
        shutil.copytree((tree or REPO) / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in PACKAGING:
        if ((tree or REPO) / part).exists():
            shutil.copy2((tree or REPO) / part, source / part)
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "meshop-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [PYTHON, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, str(source)], check=True, stdout=subprocess.DEVNULL, env=environment(None))
    return venv


def launchers(trees: dict[str, Path | None], installed: bool, workdir: Path) -> dict[str, dict[str, Launcher]]:
    """{tree label: {launcher name: launcher}}; see the docstring."""
    out: dict[str, dict[str, Launcher]] = {}
    for label, tree in trees.items():
        env = environment(tree)
        out[label] = {
            "console script": ([console_script(tree, workdir)], env),
            "python -m meshop": ([PYTHON, "-m", "meshop"], env),
        }
        if installed:
            venv = installed_venv(tree, workdir)
            plain = environment(None)
            out[label]["installed script"] = ([str(venv / "bin" / "meshop")], plain)
            out[label]["installed -m meshop"] = ([str(venv / "bin" / "python"), "-m", "meshop"], plain)
            out[label]["installed floor"] = ([str(venv / "bin" / "python")], plain)
    return out


def command_latency(consul: ConsulServer, targets: dict[str, dict[str, Launcher]], repeat: int, workdir: Path) -> dict:
    """{(label, launcher, command): median (wall, CPU) seconds} for every tree, interleaved so load hits all
    alike; ("floor", "python -c pass", "") for the dev venv, (label, "installed floor", "") per installed venv."""
    one = workdir / "one.yaml"
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    floor: list[tuple[float, float]] = []
    for i in range(repeat):
        floor.append(timed_run([PYTHON, "-c", "pass"], environment(None)))
        for label, named in targets.items():
            for launcher, (base, env) in named.items():
                if launcher == "installed floor":
                    results.setdefault((label, launcher, ""), []).append(timed_run([*base, "-c", "pass"], env))
                    continue
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
    out = {key: medians(values) for key, values in results.items()}
    out[("floor", "python -c pass", "")] = medians(floor)
    return out


def medians(values: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)


def print_latency(results: dict, targets: dict[str, dict[str, Launcher]], repeat: int) -> None:
    floor_wall, floor_cpu = results[("floor", "python -c pass", "")]
    labels = list(targets)
    floors = f"`python -c pass` takes {floor_wall * 1000:.0f} / {floor_cpu * 1000:.0f} ms in the dev venv"
    for label in labels:
        if (label, "installed floor", "") in results:
            wall, cpu = results[(label, "installed floor", "")]
            floors += f", {wall * 1000:.0f} / {cpu * 1000:.0f} ms in the installed venv ({label})"
    print(f"\ncommand latency, median of {repeat} runs (ms), wall time / CPU time; {floors}")
    header = "".join(f"{label:>14}" for label in labels)
    ratio = "   after/before (wall, CPU)" if len(labels) == 2 else ""
    print(f"{'launcher':<22}{'command':<24}{header}{ratio}")
    for launcher in targets[labels[0]]:
        if launcher == "installed floor":
            continue
        for name in COMMANDS:
            cells = [results[(label, launcher, name)] for label in labels]
            line = "".join(f"{w * 1000:>8.0f} /{c * 1000:>4.0f}" for w, c in cells)
            if len(cells) == 2:
                line += f"   {cells[1][0] / cells[0][0]:>6.2f}x, {cells[1][1] / cells[0][1]:.2f}x"
            print(f"{launcher:<22}{name:<24}{line}")


@contextlib.contextmanager
def consul_server(workdir: Path) -> Iterator[ConsulServer]:
    server = ConsulServer(workdir / "consul").start()
    try:
        yield server
    finally:
        server.stop()


# --- part 2: to running containers, on an isolated engine ------------------------------------------------

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
HTTPD = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]


@contextlib.contextmanager
def isolated_engine(workdir: Path) -> Iterator[str]:
    """A Docker engine of this run's own, in its own network namespace (its own docker0; Swarm's bridges
    and iptables rules stay inside it), with the test image loaded and Swarm initialised. Yields its
    DOCKER_HOST; stops the engine by PID and deletes the namespace at the end."""
    netns = f"mfast-{secrets.token_hex(3)}"
    root = workdir / "engine"
    root.mkdir()
    sock = f"unix://{root}/docker.sock"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    engine: Process | None = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        command = ["nsenter", f"--net=/var/run/netns/{netns}", "dockerd", "--data-root", f"{root}/data"]
        command += ["--exec-root", f"{root}/exec", "-H", sock, "--pidfile", f"{root}/docker.pid"]
        engine = Process(command, root / "dockerd.log").start()
        env = {**os.environ, "DOCKER_HOST": sock}
        wait_until(lambda: docker(env, "info").returncode == 0, 60, interval=0.2, what="the isolated engine")
        saved = subprocess.Popen(["docker", "-H", "unix:///var/run/docker.sock", "save", IMAGE], stdout=subprocess.PIPE)
        subprocess.run(["docker", "load", "-q"], stdin=saved.stdout, env=env, check=True, stdout=subprocess.DEVNULL)
        saved.wait()
        docker(env, "swarm", "init", "--advertise-addr", "127.0.0.1", check=True)
        yield sock
    finally:
        if engine is not None and engine.alive():
            os.kill(engine.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.popen.wait(30)  # type: ignore[union-attr]
            engine.stop()
        subprocess.run(["ip", "netns", "del", netns], check=False)


def docker(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=check)


def running(env: dict[str, str], label: str) -> int:
    out = docker(env, "ps", "-q", "--filter", f"label={label}", "--filter", "status=running").stdout
    return len(out.split())


def remove_labelled(env: dict[str, str], label: str) -> None:
    ids = docker(env, "ps", "-aq", "--filter", f"label={label}").stdout.split()
    if ids:
        docker(env, "rm", "-f", "-v", *ids)


def until_running(env: dict[str, str], label: str, count: int, started: float) -> float:
    wait_until(lambda: running(env, label) >= count, 300, interval=0.02, what=f"{count} running ({label})")
    return time.perf_counter() - started


class Cluster:
    """A meshop controller and agent (from one tree) on the isolated engine, on their own prefix."""

    def __init__(
        self, consul: ConsulServer, sock: str, tree: Path | None, workdir: Path, log_level: str = "info"
    ) -> None:
        self.consul, self.tree, self.workdir = consul, tree, workdir
        self.prefix = f"e2e-{secrets.token_hex(3)}"
        self.node = f"n-{secrets.token_hex(3)}"
        self.env = {**environment(tree), "DOCKER_HOST": sock}
        self.script = console_script(tree, workdir)
        base = [PYTHON, "-P", "-m", "meshop", "--consul-addr", consul.addr, "--prefix", self.prefix]
        env = {"PYTHONPATH": str(tree) if tree else "", "DOCKER_HOST": sock}
        # its own --id: two clusters share this Consul agent, and a controller registers meshop-controller-<id>
        controller = ["controller", "run", "--id", f"ctl-{self.prefix}", "--metrics-addr", "127.0.0.1:0"]
        controller += ["--log-level", log_level]
        self.controller = Process([*base, *controller], workdir / f"{self.prefix}-controller.log", env)
        agent = ["agent", "run", "--node", self.node, "--advertise-addr", "127.0.0.1", "--metrics-addr", "127.0.0.1:0"]
        agent += ["--log-level", log_level]
        agent += ["--state-dir", str(workdir / f"{self.prefix}-state"), "--stop-grace", "1"]
        self.agent = Process([*base, *agent], workdir / f"{self.prefix}-agent.log", env)

    def __enter__(self) -> Cluster:
        self.controller.start()
        self.agent.start()
        url = f"{self.consul.url}/v1/kv/{self.prefix}/nodes/{self.node}"
        wait_until(lambda: subprocess.run(["curl", "-sf", url], capture_output=True).returncode == 0, 60, 0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.agent.stop()
        self.controller.stop()
        remove_labelled(self.env, f"meshop.node={self.node}")

    def apply(self, path: Path) -> None:
        argv = [self.script, "--consul-addr", self.consul.addr, "--prefix", self.prefix, "apply", "-f", str(path)]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(done.stderr)

    def clear(self) -> None:
        """Delete every desired service and wait until the agent removed their containers."""
        urlreq = ["curl", "-sf", "-X", "DELETE", f"{self.consul.url}/v1/kv/{self.prefix}/desired/?recurse"]
        subprocess.run(urlreq, capture_output=True, check=True)
        wait_until(lambda: running(self.env, f"meshop.node={self.node}") == 0, 120, 0.1, what="services removed")


def write_services(directory: Path, count: int, tag: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"s{i:03d}.yaml").write_text(service_yaml(f"{tag}-s{i:03d}", tag))
    return directory


def new_services(workdir: Path, size: int, tag: str) -> Path:
    """What ``meshop apply -f`` gets for ``size`` new services tagged ``tag``: one file, or a directory."""
    if size == 1:
        path = workdir / f"{tag}.yaml"
        path.write_text(service_yaml(f"{tag}-one", tag))
        return path
    return write_services(workdir / tag, size, tag)


def meshop_once(cluster: Cluster, size: int, workdir: Path) -> float:
    """``meshop apply`` of ``size`` new services (one file, or a directory) until all run; then cleared."""
    tag = f"a{secrets.token_hex(3)}"
    path = new_services(workdir, size, tag)
    started = time.perf_counter()
    cluster.apply(path)
    try:
        took = until_running(cluster.env, f"meshop.node={cluster.node}", size, started)
    except TimeoutError:
        for name, process in (("controller", cluster.controller), ("agent", cluster.agent)):
            print(f"--- {name} ({cluster.prefix}), last lines:\n{process.log_tail()}", flush=True)
        raise
    cluster.clear()
    return took


def docker_run_1(env: dict[str, str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        label = f"bench-run={secrets.token_hex(3)}"
        started = time.perf_counter()
        argv = ["run", "-d", "--label", label, "-p", "127.0.0.1::8080", "-e", "RUN=x", IMAGE, *HTTPD]
        docker(env, *argv, check=True)
        out.append(until_running(env, label, 1, started))
        remove_labelled(env, label)
    return out


def compose_file(path: Path, count: int, tag: str, swarm: bool) -> Path:
    port = {"target": 8080, "mode": "host"} if swarm else "127.0.0.1::8080"
    services = {
        f"s{i:03d}": {"image": IMAGE, "command": HTTPD, "ports": [port], "environment": {"RUN": tag}}
        for i in range(count)
    }
    path.write_text(json.dumps({"version": "3.7", "services": services}, indent=1))
    return path


def compose_up(env: dict[str, str], count: int, repeat: int, workdir: Path) -> list[float]:
    out = []
    for _ in range(repeat):
        project = f"cb{secrets.token_hex(3)}"
        base = [COMPOSE, "-p", project, "-f", str(compose_file(workdir / f"{project}.json", count, project, False))]
        started = time.perf_counter()
        subprocess.run([*base, "up", "-d"], env=env, check=True, capture_output=True)
        out.append(until_running(env, f"com.docker.compose.project={project}", count, started))
        subprocess.run([*base, "down", "-t", "0", "-v"], env=env, capture_output=True)
        remove_labelled(env, f"com.docker.compose.project={project}")
    return out


def swarm_deploy(env: dict[str, str], count: int, repeat: int, workdir: Path) -> list[float]:
    out = []
    for _ in range(repeat):
        stack = f"sb{secrets.token_hex(3)}"
        path = compose_file(workdir / f"{stack}.json", count, stack, True)
        label = f"com.docker.stack.namespace={stack}"
        started = time.perf_counter()
        docker(env, "stack", "deploy", "-c", str(path), stack, check=True)
        out.append(until_running(env, label, count, started))
        docker(env, "stack", "rm", stack)
        wait_until(lambda label=label: not docker(env, "ps", "-aq", "--filter", f"label={label}").stdout.split(), 120)
    return out


def end_to_end(
    consul: ConsulServer, trees: dict[str, Path | None], sizes: list[int], repeat: int, workdir: Path
) -> dict[str, dict[str, float]]:
    """{method: {size: median seconds}} for meshop (each tree), docker run, compose and Swarm.

    Every round runs every method once, one after the other (meshop trees in alternating order), so a
    burst of load from elsewhere on the machine hits all of them alike."""
    runs: dict[str, dict[str, list[float]]] = {}

    def record(method: str, size: int, seconds: float) -> None:
        runs.setdefault(method, {}).setdefault(str(size), []).append(seconds)

    with isolated_engine(workdir) as sock, contextlib.ExitStack() as stack:
        env = {**os.environ, "DOCKER_HOST": sock}
        clusters = []
        for label, tree in trees.items():
            cluster_dir = workdir / f"cluster-{label.replace(' ', '')}"
            cluster_dir.mkdir()
            clusters.append((f"meshop apply ({label})", stack.enter_context(Cluster(consul, sock, tree, cluster_dir))))
        for r in range(repeat):
            order = clusters if r % 2 == 0 else clusters[::-1]
            for size in [1, *sizes]:
                for method, cluster in order:
                    record(method, size, meshop_once(cluster, size, workdir))
            record("docker run", 1, docker_run_1(env, 1)[0])
            for size in sizes:
                record("docker-compose up", size, compose_up(env, size, 1, workdir)[0])
                record("docker stack deploy", size, swarm_deploy(env, size, 1, workdir)[0])
            print(f"round {r + 1} of {repeat} done", flush=True)
    return {method: {size: statistics.median(v) for size, v in cells.items()} for method, cells in runs.items()}


def print_end_to_end(table: dict[str, dict[str, float]], sizes: list[int], repeat: int) -> None:
    columns = ["1", *map(str, sizes)]
    print(f"\nto running containers, isolated engine, median of {repeat} (s)")
    print(f"{'method':<28}" + "".join(f"{c + ' svc':>10}" for c in columns))
    for method, cells in table.items():
        print(f"{method:<28}" + "".join(f"{cells[c]:>10.2f}" if c in cells else f"{'-':>10}" for c in columns))
    meshop = [m for m in table if m.startswith("meshop")]
    for method in meshop:
        ratios = [f"apply-1 / docker run {table[method]['1'] / table['docker run']['1']:.2f}x (goal <= 1.3)"]
        for size in map(str, sizes):
            for peer, short in (("docker-compose up", "compose"), ("docker stack deploy", "swarm")):
                ratios.append(f"{size} svc / {short} {table[method][size] / table[peer][size]:.2f}x")
        print(f"{method}: " + "; ".join(ratios))
    if len(meshop) == 2:
        before, after = (table[m] for m in meshop)
        print("after/before: " + ", ".join(f"{c} svc {after[c] / before[c]:.2f}x" for c in columns))


def compiled(tree: Path | None, workdir: Path) -> Path | None:
    """``tree`` (None: this checkout) with compiled bytecode next to its sources; see the docstring."""
    if tree is not None:
        copy = workdir / "before-tree"
        for part in ("meshop", "crds"):
            if (tree / part).is_dir():
                shutil.copytree(tree / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        for part in PACKAGING:  # its entry point, and what ``--installed`` builds it from
            if (tree / part).exists():
                shutil.copy2(tree / part, copy / part)
        tree = copy
    target = REPO if tree is None else tree
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(target / "meshop")], check=True, stdout=subprocess.DEVNULL)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older meshop checkout to measure in the same run")
    parser.add_argument("--installed", action="store_true", help="also measure pip-installed (non-editable) venvs")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--e2e", action="store_true", help="also measure to running containers against peers")
    parser.add_argument("--e2e-repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,50", help="service counts for the end-to-end part")
    parser.add_argument("--source-only", action="store_true", help="no compiled bytecode: compile on every run")
    args = parser.parse_args()
    trees: dict[str, Path | None] = {}
    if args.before:
        trees["before"] = args.before.resolve()
    trees["after" if args.before else "this tree"] = None
    sizes = [int(s) for s in args.sizes.split(",")]
    table = None
    with tempfile.TemporaryDirectory(prefix="meshop-cli-") as tmp, consul_server(Path(tmp)) as consul:
        if not args.source_only:
            trees = {label: compiled(tree, Path(tmp)) for label, tree in trees.items()}
        print("bytecode:", "none (sources compiled on every run)" if args.source_only else "compiled", flush=True)
        targets = launchers(trees, args.installed, Path(tmp))
        results = command_latency(consul, targets, args.repeat, Path(tmp))
        print_latency(results, targets, args.repeat)  # now: the end-to-end part takes minutes and may fail
        if args.e2e:
            table = end_to_end(consul, trees, sizes, args.e2e_repeat, Path(tmp))
    if table is not None:
        print_end_to_end(table, sizes, args.e2e_repeat)


if __name__ == "__main__":
    main()
