"""The agent's node Caddy on its own (real Caddy, Consul and Docker; assignments written straight into KV
as the controller would): start-first updates without a failed request, repair of hand-edited snippet
files, and a config Caddy refuses (the previous one keeps serving, the error reaches observed state).

Agents run in-process here (faster to start; their state is inspectable); ``test_routing_e2e.py`` runs
the real ``meshop agent run`` processes.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from tests.integration.agent.helpers import assign
from tests.integration.cli.conftest import invoke
from tests.integration.routing.helpers import (
    InProcessAgent,
    RequestLoop,
    cleanup_node,
    env_of,
    httpd_spec,
    observed,
    short_dir,
    start_in_process_agent,
    stop_caddy_dir,
)
from tests.support.caddy_server import CaddyServer
from tests.support.procs import free_port, wait_until

ROUTE = {"route": {"host": "web.test", "port": "http"}}


@pytest.fixture
def node(docker_client: Any, store: KVStore) -> Iterator[str]:
    name = f"rn{secrets.token_hex(3)}"
    yield name
    cleanup_node(docker_client, store, name)


@pytest.fixture
def agents(
    role_config: Callable[..., ConsulConfig], tmp_path: Path, docker_client: Any, store: KVStore
) -> Iterator[Callable[..., InProcessAgent]]:
    """In-process agents; at the end each is stopped, then its node's containers removed (a running agent
    would recreate them, and a stopped one leaves them running by design)."""
    started: list[InProcessAgent] = []

    def start(node: str, caddy: CaddyOptions | None = None, **kw: Any) -> InProcessAgent:
        caddy = caddy or CaddyOptions(ingress_port=free_port(), directory=short_dir("c"))
        agent = start_in_process_agent(role_config("agent", node), node, tmp_path, caddy, **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
        if agent.caddy.directory is not None:
            stop_caddy_dir(agent.caddy.directory)
        cleanup_node(docker_client, store, agent.daemon.node)


def serves(agent: InProcessAgent, host: str, marker: str = "") -> Callable[[], bool]:
    def check() -> bool:
        status, body = agent.get(host, "/cgi-bin/env")
        return status == 200 and marker in body

    return check


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("meshop_caddy_reloads_total", {"component": "agent", "result": result}) or 0.0


def test_start_first_update_through_the_node_caddy_fails_no_request(
    agents: Callable[..., InProcessAgent], store: KVStore, node: str, docker_client: Any
) -> None:
    agent = agents(node, drain=0.3)
    spec = httpd_spec(**ROUTE, env=[{"name": "VERSION", "value": "one"}], update={"strategy": "start-first"})
    assign(store, node, "web", spec)
    wait_until(serves(agent, "web.test", "VERSION=one"), 20, what="the first version behind the node Caddy")
    loop = RequestLoop(lambda: agent.get("web.test", "/cgi-bin/env")).start()
    loaded = reloads("ok")
    try:
        loop.wait_more(20)
        # the new version needs 1.5 s before it answers: routing to it before its probe passed would fail
        slow = {"command": ["/bin/sh"], "args": ["-c", "sleep 1.5; exec httpd -f -p 8080 -h /www"]}
        second = assign(
            store, node, "web", {**spec, **slow, "env": [{"name": "VERSION", "value": "two"}]}, generation=2
        )

        def replaced() -> bool:
            containers = docker_client.containers.list(all=True, filters={"label": [f"meshop.node={node}"]})
            return len(containers) == 1 and containers[0].labels["meshop.spec-hash"] == second.spec_hash

        wait_until(replaced, 30, what="the old container removed after the new one took over")
        loop.wait_more(50)
    finally:
        loop.stop()
    assert loop.failures == [], loop.report()  # every GET sent once
    assert len({h for _, _, h in loop.results}) == 2  # both containers answered, one after the other
    assert reloads("ok") == loaded  # the replicas changed through the agent's upstream DNS: no reload
    assert "VERSION=two" in agent.get("web.test", "/cgi-bin/env")[1]


def test_a_hand_edited_or_deleted_snippet_is_repaired_and_other_files_are_left_alone(
    agents: Callable[..., InProcessAgent], store: KVStore, node: str
) -> None:
    agent = agents(node)
    assign(store, node, "web", httpd_spec(**ROUTE))
    wait_until(serves(agent, "web.test"), 20, what="the route behind the node Caddy")
    sites = agent.caddy.snippet_folder
    snippet = sites / "meshop-svc-web.caddy"
    good = snippet.read_text()
    port = agent.caddy.ingress_port
    (sites / "own.caddy").write_text(f'http://own.test:{port} {{\n\tbind 127.0.0.1\n\trespond "operator" 200\n}}\n')
    snippet.write_text("http://web.test {\n\treverse_proxy {\n")  # broken: would fail any reload
    ok = reloads("ok")
    agent.run_pass()
    assert snippet.read_text() == good
    assert reloads("ok") == ok + 1  # repaired and loaded; the operator's own file came along
    assert agent.get("own.test") == (200, "operator")
    assert serves(agent, "web.test")()
    snippet.unlink()
    agent.run_pass()
    assert snippet.read_text() == good and serves(agent, "web.test")()
    assert (sites / "own.caddy").exists()
    assert observed(store, node, "web").error == ""  # type: ignore[union-attr]


@pytest.fixture
def own_caddy(tmp_path: Path) -> Iterator[CaddyServer]:
    server = CaddyServer(tmp_path / "own-caddy").start()
    try:
        yield server
    finally:
        server.stop()
        server.admin_socket.unlink(missing_ok=True)  # Caddy removes it on a clean exit
        with contextlib.suppress(OSError):
            server.admin_socket.parent.rmdir()


def test_a_refused_route_leaves_the_previous_config_serving_and_is_reported_until_fixed(
    agents: Callable[..., InProcessAgent], store: KVStore, node: str, own_caddy: CaddyServer
) -> None:
    """With a Caddy of your own (--caddy-admin/--caddy-config/--caddy-snippets): your file takes a host
    meshop then routes too, so Caddy refuses the change ("ambiguous site definition")."""
    port = free_port()
    options = CaddyOptions(
        ingress_port=port,
        admin=f"unix/{own_caddy.admin_socket}",
        config=own_caddy.caddyfile,
        snippets=own_caddy.sites,
    )
    agent = agents(node, options)
    assign(store, node, "web", httpd_spec(**ROUTE))
    wait_until(serves(agent, "web.test"), 20, what="web behind the operator's Caddy")
    operator_file = own_caddy.sites / "zz-own.caddy"
    operator_file.write_text(f'http://api.test:{port} {{\n\tbind 127.0.0.1\n\trespond "operator" 200\n}}\n')
    rejected = reloads("rejected")
    assign(store, node, "api", httpd_spec(route={"host": "api.test", "port": "http"}))

    def reported() -> bool:
        seen = observed(store, node, "api")
        return seen is not None and seen.ready == 1 and seen.reason == "RouteRejected"

    wait_until(reported, 20, what="RouteRejected in observed/<node>/api")
    seen = observed(store, node, "api")
    assert seen is not None and "ambiguous site definition" in seen.error
    assert reloads("rejected") > rejected
    assert not (own_caddy.sites / "meshop-svc-api.caddy").exists()  # put back: only accepted files stay
    assert serves(agent, "web.test")()  # the previous config keeps serving
    with pytest.raises(OSError):
        agent.get("api.test")  # neither the refused route nor the unloaded file of the operator
    assert observed(store, node, "web").reason == ""  # type: ignore[union-attr]

    operator_file.unlink()  # fixed: the held route is tried again after its backoff, without any change
    wait_until(serves(agent, "api.test"), 10, what="api behind the Caddy once the clash is gone")
    wait_until(lambda: observed(store, node, "api").reason == "", 10, what="the error cleared")  # type: ignore[union-attr]
    assert env_of(agent.get("api.test", "/cgi-bin/env")[1])["HTTP_HOST"] == "api.test"


def test_ingress_port_in_use_restarts_the_caddy_meshop_runs_and_routes_load_once_it_is_free(
    agents: Callable[..., InProcessAgent], store: KVStore, node: str, consul_server: Any, prefix: str
) -> None:
    """Caddy 2.6.2 (caddy#7175) answers a listener failure with 400 but keeps a half-started server: a
    Caddy meshop runs is restarted on the files it last accepted, and the error reaches observed state
    and ``meshop status`` (a ``caddyRefused`` entry for the node, ``--check`` fails) until a load succeeds."""

    def refusals() -> list[dict[str, Any]]:
        code, out, err = invoke(consul_server.addr, prefix, "status", "-o", "json")
        assert code == 0, err
        return [r for r in json.loads(out).get("caddyRefused", []) if r["kind"] == "node" and r["name"] == node]

    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        agent = agents(node, CaddyOptions(ingress_port=port, directory=short_dir("c")))
        managed = agent.daemon.caddy.managed  # type: ignore[union-attr]
        assert managed is not None and managed.process is not None
        first_pid = managed.process.pid
        assign(store, node, "web", httpd_spec(**ROUTE))

        def reported() -> bool:
            seen = observed(store, node, "web")
            return seen is not None and seen.reason == "RouteRejected" and "address already in use" in seen.error

        wait_until(reported, 20, what="the refused listener reported in observed/<node>/web")
        assert managed.process.pid != first_pid and managed.alive()  # restarted, on the accepted files
        assert not (agent.caddy.snippet_folder / "meshop-ingress.caddy").exists()
        wait_until(
            lambda: any("address already in use" in r["message"] for r in refusals()),
            20,
            what="the refused load in meshop status",
        )
        assert invoke(consul_server.addr, prefix, "status", "--check")[0] == 1
    finally:
        blocker.close()
    wait_until(serves(agent, "web.test"), 10, what="the routes once the port is free")
    wait_until(lambda: observed(store, node, "web").reason == "", 10, what="the error cleared")  # type: ignore[union-attr]
    wait_until(lambda: not refusals(), 20, what="the refusal cleared from meshop status")
