"""``KVStore.get_blocking(..., stale=True)`` asks for a stale read on both backends, and nothing else does:
a standby's wake-up must not hang on a dead Raft leader (meshop/operator/election.py), while every read
a decision rests on stays consistent (meshop/consul/client.py). A recording HTTP server on loopback
stands in for Consul: what is checked is the request line each backend sends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore

BACKENDS: dict[str, Callable[[ConsulConfig], KVStore]] = {"py-consul": KVStore, "http": KVStore.over_http}


@pytest.fixture
def recorder() -> Iterator[tuple[ConsulConfig, list[dict[str, list[str]]]]]:
    seen: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(parse_qs(urlsplit(self.path).query, keep_blank_values=True))
            self.send_response(404)
            self.send_header("X-Consul-Index", "7")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ConsulConfig.from_env({}, addr=f"127.0.0.1:{server.server_address[1]}", prefix="meshop"), seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("backend", list(BACKENDS), ids=list(BACKENDS))
@pytest.mark.parametrize("stale", [True, False], ids=["stale", "consistent"])
def test_only_a_stale_wakeup_reads_stale(
    recorder: tuple[ConsulConfig, list[dict[str, list[str]]]], backend: str, stale: bool
) -> None:
    config, seen = recorder
    store = BACKENDS[backend](config)
    assert store.get_blocking("leader", 3, "1s", stale=stale) == (7, None)
    store.get("leader")
    wakeup, plain = seen
    assert ("stale" in wakeup, "consistent" in wakeup) == (stale, not stale), wakeup
    assert wakeup["index"] == ["3"] and "consistent" in plain and "stale" not in plain, plain
