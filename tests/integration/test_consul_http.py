"""``KVStore.over_http`` (the CLI's stdlib HTTP path) against the real, ACL-enabled Consul: the token on
every request, blocking queries longer than the timeout, a kept-alive connection the server closed.

(tests/integration/test_consul_store.py runs the store's behaviour over both backends.)"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.http import HTTPKV
from meshop.consul.store import KVStore, TxnOp
from meshop.errors import ConsulAccessDenied, ConsulUnavailable
from tests.support.consul_server import ConsulServer
from tests.support.procs import find_binary, free_port

BACKENDS: dict[str, Callable[[ConsulConfig], KVStore]] = {"py-consul": KVStore, "http": KVStore.over_http}

CALLS: dict[str, Callable[[KVStore], object]] = {
    "get": lambda s: s.get("a"),
    "get_blocking": lambda s: s.get_blocking("a"),
    "put": lambda s: s.put("b", "1"),
    "cas": lambda s: s.cas("c", "1", 0),
    "delete": lambda s: s.delete("b"),
    "delete_tree": lambda s: s.delete_tree("t/"),
    "transact": lambda s: s.transact([TxnOp.set("d", "1"), TxnOp.check_not_exists("e")]),
}
# Consul filters what a token may not read out of a listing instead of refusing it
LISTINGS: dict[str, Callable[[KVStore], list[str]]] = {
    "list": lambda s: [e.key for e in s.list("").entries],
    "keys": lambda s: s.keys(""),
    "list_together": lambda s: [e.key for listing in s.list_together(["a", "t/"]) for e in listing.entries],
}


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_every_call_carries_the_token(consul_server: ConsulServer, consul_config: ConsulConfig, call: str) -> None:
    """ACLs deny anonymous access: each call succeeds with the token and is denied without it, so the
    token went on the request (as a header)."""
    KVStore.over_http(consul_config).put("a", "1")
    CALLS[call](KVStore.over_http(consul_config))
    anonymous = ConsulConfig.from_env({}, addr=consul_server.addr, prefix=consul_config.prefix)
    with pytest.raises(ConsulAccessDenied, match="ACL permission denied; set CONSUL_HTTP_TOKEN / --token"):
        CALLS[call](KVStore.over_http(anonymous))


@pytest.mark.parametrize("call", list(LISTINGS), ids=list(LISTINGS))
def test_every_listing_carries_the_token(consul_server: ConsulServer, consul_config: ConsulConfig, call: str) -> None:
    KVStore.over_http(consul_config).put("a", "1")
    assert LISTINGS[call](KVStore.over_http(consul_config)) == ["a"]
    anonymous = ConsulConfig.from_env({}, addr=consul_server.addr, prefix=consul_config.prefix)
    assert LISTINGS[call](KVStore.over_http(anonymous)) == []


def test_token_from_the_environment_and_flag_over_it(consul_server: ConsulServer, prefix: str) -> None:
    env = {"CONSUL_HTTP_ADDR": consul_server.addr, "CONSUL_HTTP_TOKEN": consul_server.token, "MESHOP_PREFIX": prefix}
    KVStore.over_http(ConsulConfig.from_env(env)).put("k", "from-env")
    wrong = {**env, "CONSUL_HTTP_TOKEN": "00000000-0000-0000-0000-000000000000"}
    with pytest.raises(ConsulAccessDenied):
        KVStore.over_http(ConsulConfig.from_env(wrong)).get("k")
    assert KVStore.over_http(ConsulConfig.from_env(wrong, token=consul_server.token)).get("k").value == b"from-env"


def test_a_blocking_query_may_outlast_the_timeout_and_wakes_on_a_write(consul_config: ConsulConfig) -> None:
    store = KVStore.over_http(
        ConsulConfig.from_env(
            {},
            addr=f"{consul_config.host}:{consul_config.port}",
            token=consul_config.token,
            prefix=consul_config.prefix,
            timeout=0.5,
        )
    )
    store.put("w", "1")
    index = store.list("w").index
    started = time.monotonic()
    same = store.list("w", index=index, wait="1500ms")  # longer than the 0.5 s timeout: no error
    assert time.monotonic() - started >= 1.0 and [e.value for e in same.entries] == [b"1"]

    writer = threading.Timer(0.3, lambda: KVStore.over_http(consul_config).put("w", "2"))
    writer.start()
    try:
        new_index, entry = store.get_blocking("w", index=same.index, wait="20s")
    finally:
        writer.join()
    assert entry is not None and entry.value == b"2" and new_index > same.index


@pytest.fixture
def closing_server() -> Iterator[tuple[int, list[int]]]:
    """An HTTP/1.1 server on loopback that answers each connection once, then closes it without saying
    so (no ``Connection: close``), as a server does with an idle kept-alive connection. Records the
    connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                accepted.append(1)
                conn.recv(65536)
                body = b'[{"Key":"p/k","Value":"dg==","ModifyIndex":7,"CreateIndex":7}]'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_connection_the_server_closed_is_replaced(closing_server: tuple[int, list[int]]) -> None:
    port, accepted = closing_server
    store = KVStore.over_http(ConsulConfig.from_env({}, addr=f"127.0.0.1:{port}", prefix="p", timeout=2))
    assert store.get("k").value == b"v"
    deadline = time.monotonic() + 5
    while len(accepted) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get("k").value == b"v"  # not ConsulUnavailable: a fresh connection
    assert len(accepted) == 2


def test_a_server_that_never_answers_times_out(prefix: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        port = listener.getsockname()[1]
        kv = HTTPKV(ConsulConfig.from_env({}, addr=f"127.0.0.1:{port}", prefix=prefix, timeout=0.3))
        with pytest.raises(ConsulUnavailable, match=rf"Consul at http://127.0.0.1:{port} is timed out"):
            kv.get(f"{prefix}/k", "reading k")
    finally:
        listener.close()


@pytest.fixture(scope="module")
def tls_consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsulServer, int, Path]]:
    """A ``-dev`` Consul that also serves HTTPS, with a CA and server certificate made by ``consul tls``
    (names: localhost, 127.0.0.1). Yields the server, its HTTPS port and the CA file."""
    workdir = tmp_path_factory.mktemp("consul-tls")
    consul = find_binary("consul", "MESHOP_CONSUL_BIN")
    for args in (["tls", "ca", "create"], ["tls", "cert", "create", "-server", "-dc", "dc1"]):
        subprocess.run([consul, *args], cwd=workdir, check=True, capture_output=True, timeout=60)
    https = free_port()
    hcl = (
        f"ports {{ https = {https} }}\n"
        f'ca_file = "{workdir}/consul-agent-ca.pem" '
        f'cert_file = "{workdir}/dc1-server-consul-0.pem" key_file = "{workdir}/dc1-server-consul-0-key.pem"'
    )
    server = ConsulServer(workdir, hcl=hcl).start()
    try:
        yield server, https, workdir / "consul-agent-ca.pem"
    finally:
        server.stop()


@pytest.mark.parametrize("backend", list(BACKENDS), ids=list(BACKENDS))
def test_tls_honours_the_ca_the_verify_switch_and_refuses_an_unknown_ca(
    tls_consul: tuple[ConsulServer, int, Path], backend: str
) -> None:
    """``CONSUL_HTTP_SSL`` + ``CONSUL_CACERT`` connect; without the CA the server's certificate is refused
    (a clear error, nothing sent in clear); ``CONSUL_HTTP_SSL_VERIFY=false`` connects unverified. The same
    for py-consul and the stdlib path."""
    _, port, ca = tls_consul
    make = BACKENDS[backend]
    env = {"CONSUL_HTTP_ADDR": f"127.0.0.1:{port}", "CONSUL_HTTP_SSL": "true", "MESHOP_PREFIX": "tls"}
    make(ConsulConfig.from_env({**env, "CONSUL_CACERT": str(ca)})).put("k", f"by {backend}")
    with pytest.raises(ConsulUnavailable, match=rf"Consul at https://127.0.0.1:{port} "):
        make(ConsulConfig.from_env(env)).get("k")
    unverified = make(ConsulConfig.from_env({**env, "CONSUL_HTTP_SSL_VERIFY": "false"}))
    assert unverified.get("k").value == f"by {backend}".encode()
