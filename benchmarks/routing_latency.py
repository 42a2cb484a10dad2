"""How fast a route change reaches clients through the gateway, and what a Caddy reload costs.

1. Route change in KV -> the gateway serving it (``meshop gateway run``, ``tls internal``, HTTPS requests
   trusting its CA, polled every 2 ms), median of ``--repeat``:
   * a new ``routes/<host>`` record (the gateway also issues the host's certificate);
   * an existing route's upstream switched to another backend;
   * a Service document put with a controller and an agent running (``--caddy-dir``): the whole path,
     container start and its first health probe included (``--full-repeat`` runs).
2. Caddy reload latency of the gateway config with 10, 100 and 500 routes (``render_gateway``, every
   load a real change): meshop's load through the admin API (``ConfigApplier``) against the
   ``caddy reload`` CLI on the same text, in the same run; TLS off and ``tls internal`` (warm: the
   certificates already exist).
3. Requests during reloads: one client sending GETs back to back (a new connection each) through the
   gateway config while it is reloaded ``--traffic-reloads`` times, 50 ms apart; counts the answers and
   the connections Caddy broke.
4. Requests across upstream changes through ``meshop gateway run`` (``tls internal``): a route's upstream
   switched between two backends ``--upstream-changes`` times in KV, 100 ms apart, under the same client;
   failed requests per 100 changes and Caddy config loads, with ``--upstream-dns off`` (every change a
   full reload, as before) and with the gateway's upstream DNS (the default).

Starts its own Consul, Caddies, containers and meshop processes and stops them by PID / removes them by
label. Prints figures, not a pass/fail.

    .venv/bin/python benchmarks/routing_latency.py [--repeat 7] [--full-repeat 3] [--sizes 10,100,500]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from meshop.caddy.admin import CaddyAdmin  # noqa: E402
from meshop.caddy.apply import ConfigApplier  # noqa: E402
from meshop.caddy.process import ManagedCaddy  # noqa: E402
from meshop.caddy.render import Site, render_global  # noqa: E402
from meshop.consul.config import ConsulConfig  # noqa: E402
from meshop.consul.store import KVStore  # noqa: E402
from meshop.gateway.config import GatewayPlan, GatewaySettings, render_gateway  # noqa: E402
from meshop.model import keys  # noqa: E402
from meshop.model.records import RouteRecord, Upstream, dumps  # noqa: E402
from meshop.operator.controller import Controller, ControllerOptions  # noqa: E402
from tests.integration.routing.helpers import (  # noqa: E402
    Gateway,
    httpd_spec,
    service_doc,
    start_agent_process,
    start_gateway,
    stop_caddy_dir,
)
from tests.support import http  # noqa: E402
from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.containers import run_httpd  # noqa: E402
from tests.support.procs import free_port, wait_until  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def timed(action: Callable[[], None], done: Callable[[], bool], timeout: float = 60.0) -> float:
    start = time.monotonic()
    action()
    wait_until(done, timeout, interval=0.002, what="the change to be served")
    return time.monotonic() - start


def answers(get: Callable[[], tuple[int, str]], marker: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            status, body = get()
        except OSError:
            return False
        return status == 200 and marker in body

    return check


@contextlib.contextmanager
def environment() -> Iterator[tuple[ConsulServer, KVStore, Path, str, docker.DockerClient]]:
    workdir = Path(tempfile.mkdtemp(prefix="meshop-bench-routing-"))
    consul = ConsulServer(workdir / "consul").start()
    prefix = f"bench-{secrets.token_hex(3)}"
    store = KVStore(ConsulConfig.from_env({}, addr=consul.addr, prefix=prefix, timeout=10))
    client = docker.from_env(timeout=60)
    try:
        yield consul, store, workdir, prefix, client
    finally:
        consul.stop()
        client.close()
        shutil.rmtree(workdir, ignore_errors=True)


def route_changes(repeat: int, full_repeat: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"new route": [], "upstream switched": [], "service put (full path)": []}
    with environment() as (consul, store, workdir, prefix, client):
        backends = [run_httpd(client, "bench-a", page="backend-a"), run_httpd(client, "bench-b", page="backend-b")]
        gateway = start_gateway(consul.addr, prefix, workdir)
        node = f"bench{secrets.token_hex(2)}"
        agent = start_agent_process(consul.addr, prefix, node, workdir)
        controller: Controller | None = None
        try:
            port_of = {"backend-a": backends[0][1], "backend-b": backends[1][1]}

            def put(host: str, page: str) -> Callable[[], None]:
                upstream = Upstream("n1", "127.0.0.1", port_of[page], True)
                record = RouteRecord(host=host, service=host.split(".")[0], upstreams=(upstream,))
                return lambda: store.put(keys.route(host), dumps(record))

            def via_gateway(host: str, path: str = "/") -> Callable[[], tuple[int, str]]:
                return lambda: http.get(gateway.https_port, host, path, tls_ca=gateway.ca, timeout=5)

            put("warmup.bench.test", "backend-a")()
            wait_until(answers(via_gateway("warmup.bench.test"), "backend-a"), 60, what="the gateway's first route")
            for i in range(repeat):
                host = f"new{i}.bench.test"
                results["new route"].append(timed(put(host, "backend-a"), answers(via_gateway(host), "backend-a")))
            for i in range(repeat):
                page = ("backend-b", "backend-a")[i % 2]
                results["upstream switched"].append(
                    timed(put("warmup.bench.test", page), answers(via_gateway("warmup.bench.test"), page))
                )
            # the controller owns routes/: it starts only now (it would delete the hand-written records)
            for i in range(repeat):
                store.delete(keys.route(f"new{i}.bench.test"))
            store.delete(keys.route("warmup.bench.test"))
            controller = Controller(
                ConsulConfig.from_env({}, addr=consul.addr, prefix=prefix, timeout=10),
                ControllerOptions(f"{prefix}-c1", lock_delay=1, check_ttl=1.0, local_cluster=True),
            ).start()
            wait_until(lambda: controller.election.is_leader, 30, what="the controller to lead")  # type: ignore[union-attr]
            for i in range(full_repeat):
                name, host = f"svc{i}", f"svc{i}.bench.test"
                doc = service_doc(name, httpd_spec(route={"host": host, "port": "http"}))
                results["service put (full path)"].append(
                    timed(
                        lambda doc=doc, name=name: store.put(keys.desired_service(name), doc),
                        answers(via_gateway(host, "/cgi-bin/env"), f"HTTP_HOST={host}"),
                    )
                )
        finally:
            if controller is not None:
                controller.stop()
            agent.process.stop()
            gateway.process.stop()
            stop_caddy_dir(agent.caddy_dir)
            stop_caddy_dir(gateway.caddy_dir)
            for container, _ in backends:
                container.remove(force=True)
            for container in client.containers.list(all=True, filters={"label": [f"meshop.node={node}"]}):
                container.remove(force=True, v=True)
    return results


def gateway_text(settings: GatewaySettings, count: int, variant: int) -> str:
    """The gateway config with ``count`` routes; ``variant`` changes one upstream, so each load is real."""
    sites = tuple(
        Site(f"r{i}.bench.test", "/", (f"127.0.0.1:{20000 + i + (variant if i == 0 else 0)}",)) for i in range(count)
    )
    return render_gateway(settings, GatewayPlan(sites, ()))[0]


def issued(directory: Path) -> int:
    return len(list((directory / "data" / "caddy" / "certificates" / "local").glob("*/*.crt")))


def reloads(sizes: list[int], repeat: int) -> list[tuple[str, int, float, float]]:
    rows = []
    caddy_bin = shutil.which("caddy") or "caddy"
    for tls in ("off", "internal"):
        directory = Path(tempfile.mkdtemp(prefix="mrb-", dir="/tmp"))
        admin = CaddyAdmin(f"unix/{directory / 'admin.sock'}")
        managed = ManagedCaddy(directory, render_global(admin=admin.address), caddy_bin)
        managed.start(admin)
        try:
            settings = GatewaySettings(
                admin=admin.address, http_port=free_port(), https_port=free_port(), tls_mode=tls, local_cluster=True
            )
            applier = ConfigApplier(admin, "benchmark")
            for count in sizes:
                applier.apply(gateway_text(settings, count, 1))  # warm-up: certificates, listeners
                if tls == "internal":  # wait for the background certificate issuance to finish
                    wait_until(lambda n=count, d=directory: issued(d) >= n, 300, interval=0.1, what="certificates")
                ours, peer = [], []
                for i in range(repeat):
                    text = gateway_text(settings, count, 2 + i % 2)
                    start = time.monotonic()
                    applier.apply(text)
                    ours.append(time.monotonic() - start)
                    source = directory / "bench.caddy"
                    source.write_text(gateway_text(settings, count, 4 + i % 2))
                    start = time.monotonic()
                    subprocess.run(
                        [caddy_bin, "reload", "--config", str(source), "--adapter", "caddyfile", "--address",
                         admin.address],
                        check=True,
                        capture_output=True,
                        env=managed.env(),
                        timeout=120,
                    )  # fmt: skip
                    peer.append(time.monotonic() - start)
                rows.append((tls, count, statistics.median(ours), statistics.median(peer)))
        finally:
            managed.stop()
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def reload_traffic(reloads: int) -> dict[str, dict[str, int]]:
    client = docker.from_env(timeout=60)
    container, port = run_httpd(client, "bench-reload", page="ok")
    try:
        return {tls: traffic_during_reloads(tls, port, reloads) for tls in ("off", "internal")}
    finally:
        container.remove(force=True)
        client.close()


def traffic_during_reloads(tls: str, port: int, reloads: int) -> dict[str, int]:
    """Outcome counts ("200", or the exception's name) of back-to-back GETs while Caddy reloads."""
    directory = Path(tempfile.mkdtemp(prefix="mrt-", dir="/tmp"))
    admin = CaddyAdmin(f"unix/{directory / 'admin.sock'}")
    managed = ManagedCaddy(directory, render_global(admin=admin.address))
    managed.start(admin)
    settings = GatewaySettings(
        admin.address, http_port=free_port(), https_port=free_port(), tls_mode=tls, local_cluster=True
    )
    applier = ConfigApplier(admin, "benchmark")
    counts: dict[str, int] = {}
    stop = threading.Event()

    def config(i: int) -> str:
        sites = (
            Site("a.bench.test", "/", (f"127.0.0.1:{port}",)),
            Site("b.bench.test", "/", (f"127.0.0.1:{20000 + i % 2}",)),
        )
        return render_gateway(settings, GatewayPlan(sites, ()))[0]

    def get() -> tuple[int, str]:
        if tls == "off":
            return http.get(settings.http_port, "a.bench.test", timeout=5)
        return http.get(settings.https_port, "a.bench.test", tls_ca=str(managed.ca_root), timeout=5)

    def loop() -> None:
        while not stop.is_set():
            try:
                key = str(get()[0])
            except OSError as exc:
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1

    try:
        applier.apply(config(0))
        wait_until(answers(get, "ok"), 60, what="the route")
        thread = threading.Thread(target=loop)
        thread.start()
        for i in range(reloads):
            applier.apply(config(i + 1))
            time.sleep(0.05)
        stop.set()
        thread.join()
    finally:
        managed.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return counts


def upstream_changes(changes: int) -> dict[str, dict[str, int]]:
    """{mode: outcome counts + "loads"} for a route's upstream switched ``changes`` times in KV."""
    results: dict[str, dict[str, int]] = {}
    with environment() as (consul, store, workdir, _prefix, client):
        backends = [run_httpd(client, "bench-c", page="ok"), run_httpd(client, "bench-d", page="ok")]
        try:
            for mode, extra in (("reload (--upstream-dns off)", ("--upstream-dns", "off")), ("upstream DNS", ())):
                host = f"flip{len(results)}.bench.test"
                gateway = start_gateway(consul.addr, store.prefix, workdir, *extra, log_name=f"gw{len(results)}.log")
                try:
                    results[mode] = flip_under_load(store, gateway, host, [port for _, port in backends], changes)
                finally:
                    gateway.process.stop()
                    stop_caddy_dir(gateway.caddy_dir)
                store.delete(keys.route(host))
        finally:
            for container, _ in backends:
                container.remove(force=True)
    return results


def flip_under_load(store: KVStore, gateway: Gateway, host: str, ports: list[int], changes: int) -> dict[str, int]:
    def put(i: int) -> None:
        record = RouteRecord(
            host=host, service="flip", upstreams=(Upstream(f"n{i % 2}", "127.0.0.1", ports[i % 2], True),)
        )
        store.put(keys.route(host), dumps(record))

    def loads() -> int:
        return gateway.process.log_path.read_text(errors="replace").count("gateway config loaded")

    put(0)
    wait_until(answers(lambda: gateway.get(host, timeout=5), "ok"), 60, what="the flip route")
    counts: dict[str, int] = {}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                key = str(gateway.get(host, timeout=5)[0])
            except OSError as exc:
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1

    before = loads()
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for i in range(1, changes + 1):
            put(i)
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    counts["loads"] = loads() - before
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--full-repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--traffic-reloads", type=int, default=300)
    parser.add_argument("--upstream-changes", type=int, default=300)
    parser.add_argument("--only-upstream-changes", action="store_true", help="run part 4 alone")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    if args.only_upstream_changes:
        print_upstream_changes(upstream_changes(args.upstream_changes), args.upstream_changes)
        return
    changes = route_changes(args.repeat, args.full_repeat)
    print("\nRoute change in KV -> served through the gateway (HTTPS, tls internal)")
    print(f"{'change':<28}{'median':>10}{'min':>10}{'max':>10}  runs")
    for name, values in changes.items():
        if values:
            low, mid, high = ms(min(values)), ms(statistics.median(values)), ms(max(values))
            print(f"{name:<28}{mid:>10}{low:>10}{high:>10}  {len(values)}")

    rows = reloads(sizes, args.repeat)
    print("\nCaddy reload of the gateway config (median of each; every load a real change)")
    print(f"{'tls':<10}{'routes':>8}{'meshop (admin API)':>20}{'caddy reload CLI':>18}{'ratio':>8}")
    for tls, count, ours, peer in rows:
        print(f"{tls:<10}{count:>8}{ms(ours):>20}{ms(peer):>18}{ours / peer:>8.2f}")
    traffic = reload_traffic(args.traffic_reloads) if args.traffic_reloads else {}
    if traffic:
        print(
            f"\nOne client, GETs back to back, while the config is reloaded {args.traffic_reloads} times (50 ms apart)"
        )
        for tls, counts in traffic.items():
            ok = counts.get("200", 0)
            broken = {k: v for k, v in counts.items() if k != "200"}
            print(f"tls {tls:<9} answered 200: {ok:>6}   other: {broken or 'none'}")
    flips = upstream_changes(args.upstream_changes) if args.upstream_changes else {}
    print_upstream_changes(flips, args.upstream_changes)
    print(json.dumps({"changes": changes, "reloads": rows, "traffic": traffic, "flips": flips}), file=sys.stderr)


def print_upstream_changes(flips: dict[str, dict[str, int]], changes: int) -> None:
    if not flips:
        return
    print(f"\nOne client, GETs back to back through the gateway, while a route's upstream changes {changes} times")
    print(f"{'mode':<30}{'answered 200':>14}{'failed':>8}{'per 100 changes':>17}{'config loads':>14}  failures")
    for mode, counts in flips.items():
        failed = {k: v for k, v in counts.items() if k not in ("200", "loads")}
        total = sum(failed.values())
        per100 = total * 100 / changes
        print(f"{mode:<30}{counts.get('200', 0):>14}{total:>8}{per100:>17.1f}{counts['loads']:>14}  {failed or 'none'}")


if __name__ == "__main__":
    main()
