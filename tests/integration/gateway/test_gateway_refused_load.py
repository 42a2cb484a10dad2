"""A gateway Caddy that refuses its config is never "Healthy": the refusal reaches KV, status and metrics.

Issue 22's case: another program holds the gateway's port (Debian's stock ``caddy.service`` on :80), so
Caddy refuses the config that would bind it and keeps serving the previous one. Here a plain socket holds
the HTTPS port before the gateway's first load, with a real Consul, a real Caddy the gateway runs itself
and the real ``meshop status``.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import RouteRecord, Upstream, dumps
from tests.integration.cli.conftest import invoke
from tests.support.meshop_proc import meshop_process
from tests.support.procs import free_port, wait_until

GATEWAY_ID = "gw-refused"


def gauge(metrics_port: int) -> float | None:
    """``meshop_caddy_config_refused{component="gateway"}`` from the gateway's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('meshop_caddy_config_refused{component="gateway"}'):
                return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def blocker() -> Iterator[socket.socket]:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder
    finally:
        holder.close()


def test_a_taken_port_is_a_refusal_in_kv_status_and_metrics_until_the_port_is_free(
    store: KVStore, consul_server, tmp_path: Path, blocker: socket.socket
) -> None:
    https_port, metrics_port = blocker.getsockname()[1], free_port()
    args = ["gateway", "run", "--caddy-dir", str(tmp_path / "gw"), "--https-port", str(https_port)]
    args += ["--http-port", str(free_port()), "--metrics-addr", f"127.0.0.1:{metrics_port}", "--resync", "2"]
    process = meshop_process(consul_server.addr, store.prefix, [*args, "--id", GATEWAY_ID], tmp_path / "gw.log")
    upstream = Upstream("n1", "127.0.0.1", free_port(), True)
    store.put(keys.route("refused.localhost"), dumps(RouteRecord("refused.localhost", "refused", "/", (upstream,), "")))
    process.start()
    try:

        def load_record() -> dict | None:
            entry = store.get(keys.gateway_caddy(GATEWAY_ID))
            return json.loads(entry.value) if entry is not None else None

        def refused() -> dict | None:
            record = load_record()
            return record if record is not None and record.get("loaded") is False else None

        record = wait_until(refused, 30, what="gateways/<id>/caddy to report the refused load")
        assert "address already in use" in record["message"]
        wait_until(lambda: gauge(metrics_port) == 1.0, 10, what="meshop_caddy_config_refused 1")

        code, out, err = invoke(consul_server.addr, store.prefix, "status", "-o", "json")
        assert code == 0, err
        entries = [r for r in json.loads(out).get("caddyRefused", []) if r["kind"] == "gateway"]
        assert [r["name"] for r in entries] == [GATEWAY_ID]
        assert "address already in use" in entries[0]["message"]
        code, out, _ = invoke(consul_server.addr, store.prefix, "status", "--check")
        assert code != 0  # a refusing gateway fails the check, whatever the services say

        blocker.close()  # the other program stops: the next pass loads, with no operator action

        def loaded() -> bool:
            record = load_record()
            return record is not None and record.get("loaded") is True

        wait_until(loaded, 30, what="the load to succeed once the port is free")
        assert gauge(metrics_port) == 0.0
        code, out, err = invoke(consul_server.addr, store.prefix, "status", "-o", "json")
        assert code == 0, err
        assert not [r for r in json.loads(out).get("caddyRefused", []) if r["kind"] == "gateway"]
    finally:
        process.stop()
    assert store.get(keys.gateway_caddy(GATEWAY_ID)) is None  # a clean stop leaves no stale record
