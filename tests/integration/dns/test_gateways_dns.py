"""Two real ``meshop gateway run`` processes register themselves (``--advertise-addr``) with health
checks Consul runs; the DNS writer (controller token, a held leader lock) points a real BIND9's records
at the healthy ones: a killed gateway is withdrawn, a drained one leaves DNS while it still serves."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore
from meshop.dns.targets import claim_value
from meshop.model import keys
from meshop.model.records import RouteRecord, Upstream, dumps
from meshop.operator.dns import DnsWriter
from tests.integration.dns.leader import leading_writer
from tests.integration.dns.test_writer import gateway_doc
from tests.support.bind_server import BindServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, free_port, kill_pidfile, wait_until

pytestmark = pytest.mark.slow


def start_gateway(consul_addr: str, prefix: str, tmp_path: Path, gid: str, address: str, drain: float) -> Process:
    args = ["gateway", "run", "--caddy-dir", str(tmp_path / gid), "--id", gid, "--advertise-addr", address]
    args += ["--https-port", str(free_port()), "--http-port", str(free_port()), "--metrics-addr", "127.0.0.1:0"]
    args += ["--check-interval", "0.5", "--drain", str(drain), "--resync", "5"]
    return meshop_process(consul_addr, prefix, args, tmp_path / f"{gid}.log").start()


@pytest.fixture
def writer(store: KVStore, role_config, bind: BindServer, prefix: str) -> Iterator[DnsWriter]:
    store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.secret)
    store.put(keys.DESIRED_GATEWAY, gateway_doc(bind, prefix, "secrets/meshop-dns/tsig", ttl=5))
    host = f"web.{bind.zone}"
    store.put(keys.route(host), dumps(RouteRecord(host, "web", "/", (Upstream("n1", "127.0.1.1", 8080, True),))))
    with leading_writer(role_config, resync=30.0, wait="5s") as dns:
        yield dns


def test_records_follow_real_gateways(writer: DnsWriter, bind: BindServer, consul_server, prefix, tmp_path) -> None:
    def web() -> list[str]:
        return bind.query("web", "A")

    wait_until(lambda: web() == ["127.0.1.1"], 20, what="direct to the node before any gateway")
    g1 = start_gateway(consul_server.addr, prefix, tmp_path, "g1", "127.0.0.41", drain=0)
    g2 = start_gateway(consul_server.addr, prefix, tmp_path, "g2", "127.0.0.42", drain=4)
    try:
        wait_until(lambda: web() == ["127.0.0.41", "127.0.0.42"], 40, what=f"both gateways in DNS (have {web()})")
        kill_pidfile(tmp_path / "g1" / "caddy.pid")  # the machine dies: its Caddy with it
        g1.kill()
        killed = time.monotonic()
        wait_until(lambda: web() == ["127.0.0.42"], 15, what="the killed gateway withdrawn")
        assert time.monotonic() - killed < 10  # checks every 0.5 s; the writer wakes on the health change
        g2.signal(signal.SIGTERM)  # planned stop: leave DNS first, keep serving for --drain seconds
        wait_until(lambda: web() == ["127.0.1.1"], 10, what="the draining gateway withdrawn")
        assert g2.alive(), "the draining gateway stopped before DNS moved away from it"
        g2.popen.wait(20)
    finally:
        g1.stop()
        g2.stop()
        for gid in ("g1", "g2"):
            kill_pidfile(tmp_path / gid / "caddy.pid")
    assert not g2.alive()


def test_a_rebooted_gateway_host_is_named_only_once_its_gateway_holds_its_claim_again(
    writer: DnsWriter, bind: BindServer, consul_server, prefix, role_config, tmp_path
) -> None:
    """The window a power-off leaves: the machine's Consul agent is back (serfHealth passing) while the
    catalog still shows the gateway checks it synced before the power went, passing, and no gateway serves
    there yet. Here a registration passing its check stands for them, with the claim as the machine's death
    left it (released): DNS must not name it. Held again (its gateway serves), it is named. A real gateway
    whose session Consul invalidates takes its claim again by itself."""

    def web() -> list[str]:
        return bind.query("web", "A")

    gateway = role_config("gateway")
    g_store = KVStore(gateway)
    services = Services(gateway, g_store.client)
    sessions = Sessions(g_store)
    stale = Registration(
        "meshop-gateway-g3",
        "meshop-gateway",
        "127.0.0.43",
        8080,
        meta={"id": "g3"},
        checks=(CheckSpec("g3:ttl", "g3", ttl="60s"),),
    )
    services.register(stale)
    services.ttl_pass("g3:ttl")
    claim = keys.gateway_claim("g3")
    g_store.put(claim, claim_value("127.0.0.43", held=True))  # as released by the machine's invalidated session
    g1 = start_gateway(consul_server.addr, prefix, tmp_path, "g1", "127.0.0.41", drain=0)
    try:
        wait_until(lambda: web() == ["127.0.0.41"], 40, what="g1 alone in DNS")
        held = g_store.get(keys.gateway_claim("g1"))
        assert held is not None and held.session and json.loads(held.value) == {"address": "127.0.0.41", "held": True}
        # g1 was named by a pass that came after g3's registration and claim: g3 was there, and left out
        assert web() == ["127.0.0.41"], "a passing registration whose claim is not held was named"

        lock = sessions.acquire(
            claim, sessions.create("meshop-gateway-g3", lock_delay=0), claim_value("127.0.0.43", held=True)
        )
        assert lock is not None  # g3's gateway serves again and holds its claim
        wait_until(lambda: web() == ["127.0.0.41", "127.0.0.43"], 15, what="g3 named once held")
        sessions.destroy(lock.session)  # the machine dies again: the claim is released
        wait_until(lambda: web() == ["127.0.0.41"], 15, what="g3 withdrawn with its session")

        sessions.destroy(held.session)  # what Consul does when g1's machine fails serfHealth: g1 takes it again
        wait_until(
            lambda: (e := g_store.get(keys.gateway_claim("g1"))) is not None and e.session not in (None, held.session),
            10,
            what="g1 to hold its claim again with a new session",
        )
        wait_until(lambda: web() == ["127.0.0.41"], 15, what="g1 still in DNS")

        # a crash restarted at once (the machine lives, so does its session): the new run clears the old
        # run's session before it serves, and holds the claim with its own
        before = g_store.get(keys.gateway_claim("g1"))
        assert before is not None and before.session
        g1.kill()
        kill_pidfile(tmp_path / "g1" / "caddy.pid")
        g1 = start_gateway(consul_server.addr, prefix, tmp_path, "g1", "127.0.0.41", drain=0)
        wait_until(
            lambda: (
                (e := g_store.get(keys.gateway_claim("g1"))) is not None and e.session not in (None, before.session)
            ),
            20,
            what="the restarted g1 to hold its claim with a session of its own",
        )
        assert before.session not in sessions.named(f"meshop-gateway-{prefix}-g1")
        wait_until(lambda: web() == ["127.0.0.41"], 15, what="g1 in DNS after its restart")
    finally:
        g1.stop()
        kill_pidfile(tmp_path / "g1" / "caddy.pid")
        services.deregister("meshop-gateway-g3")
