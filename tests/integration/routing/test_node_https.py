"""HTTPS straight on a node (``--ingress-https-port``; docs/dns.md "Direct to the nodes"): a real agent
(in-process, with its own token: it reads ``desired/gateway`` through its ACL policy), its real node Caddy
and Consul. With the Gateway document's ``tls: internal`` the node answers HTTPS for the host of a route
its replica serves, with a certificate from its own CA (trusted from its data dir), and has no
certificate for any other name; ``tls: off`` takes the HTTPS listener away again.
"""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.agent.helpers import assign
from tests.integration.routing.helpers import (
    InProcessAgent,
    NoResponse,
    cleanup_node,
    env_of,
    fetch,
    httpd_spec,
    short_dir,
    start_in_process_agent,
    stop_caddy_dir,
)
from tests.support.procs import free_port, wait_until

HOST = "web.nodetls.test"
GATEWAY = """apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {name: gateway}
spec:
  domains: [nodetls.test]
  tls: {mode: MODE}
"""


@pytest.fixture
def agent(
    role_config: Callable[..., ConsulConfig], tmp_path: Path, docker_client: Any, store: KVStore
) -> Iterator[InProcessAgent]:
    node = f"rs{secrets.token_hex(3)}"
    caddy = CaddyOptions(ingress_port=free_port(), https_port=free_port(), directory=short_dir("s"))
    started = start_in_process_agent(role_config("agent", node), node, tmp_path, caddy)
    yield started
    started.stop()
    stop_caddy_dir(caddy.directory)  # type: ignore[arg-type]
    cleanup_node(docker_client, store, node)


def ca_of(agent: InProcessAgent) -> str:
    assert agent.caddy.directory is not None
    return str(agent.caddy.directory / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt")


def https_get(agent: InProcessAgent, host: str) -> tuple[int, str]:
    assert agent.caddy.https_port is not None
    return fetch(agent.caddy.https_port, host, "/cgi-bin/env", tls_ca=ca_of(agent), timeout=10)


def answers(agent: InProcessAgent, host: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return https_get(agent, host)[0] == 200
        except (OSError, ssl.SSLError):
            return False

    return check


def handshake_fails(agent: InProcessAgent, host: str) -> bool:
    """True when the node's HTTPS port has no certificate for ``host`` (TLS alert, connection kept open)."""
    assert agent.caddy.https_port is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", agent.caddy.https_port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return False
        except ssl.SSLError:
            return True


def no_listener(agent: InProcessAgent) -> bool:
    assert agent.caddy.https_port is not None
    try:
        socket.create_connection(("127.0.0.1", agent.caddy.https_port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_node_terminates_tls_for_its_own_route_hosts_only(agent: InProcessAgent, store: KVStore) -> None:
    store.put(keys.DESIRED_GATEWAY, GATEWAY.replace("MODE", "internal"))
    assign(store, agent.daemon.node, "web", httpd_spec(route={"host": HOST, "port": "http"}))
    wait_until(answers(agent, HOST), 30, what="an HTTPS answer from the node for the route host")
    status, body = https_get(agent, HOST)  # verified: the name, against the node Caddy's own CA
    assert status == 200
    assert env_of(body)["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env_of(body)["HOSTNAME"]  # answered by the replica (busybox CGI), not by Caddy
    assert agent.get(HOST, "/cgi-bin/env")[0] == 200  # the plain-HTTP route for the gateway is still there
    for stranger in ("other.nodetls.test", "web.elsewhere.test"):  # a name no local replica serves
        assert handshake_fails(agent, stranger), stranger
        with pytest.raises(NoResponse):
            https_get(agent, stranger)

    store.put(keys.DESIRED_GATEWAY, GATEWAY.replace("MODE", "off"))  # followed through the agent's watch
    wait_until(lambda: no_listener(agent), 20, what="the HTTPS listener gone with tls: off")
    assert agent.get(HOST, "/cgi-bin/env")[0] == 200
