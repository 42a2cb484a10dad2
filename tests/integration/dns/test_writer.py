"""The DNS writer against real Consul (ACLs on, role tokens) and a real BIND9: records follow gateway
health (added, killed, all killed -> direct to nodes, back), foreign records untouched, a wrong TSIG
key refused with a clear status and no change, the secret nowhere in status, events or logs."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator

import pytest

from meshop import metrics
from meshop.cli.render import dns_line
from meshop.client.cluster import read_snapshot
from meshop.client.status import build_report
from meshop.client.watch import StatusWatch
from meshop.consul.client import make_client
from meshop.consul.events import EventLog
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.gateway.presence import gateway_registration, presence
from meshop.model import keys
from meshop.model.records import DnsStatus, RouteRecord, Upstream, dumps, loads_json
from meshop.operator.dns import DnsWriter
from tests.integration.dns.leader import NODES, leading_writer, put_routes
from tests.support.bind_server import BindServer
from tests.support.dns_zone import foreign_part
from tests.support.procs import free_port, wait_until


class FakeGatewayEndpoint:
    """What Consul's checks of one gateway dial: /readyz (200) on a real loopback listener."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> FakeGatewayEndpoint:
        class Ready(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ready")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Ready)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def kill(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def gateway_doc(bind: BindServer, prefix: str, secret_key: str, ttl: int = 30) -> str:
    return f"""apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {{name: prod}}
spec:
  domains: [{bind.zone}]
  tls: {{mode: internal}}
  dns:
    provider: rfc2136
    server: 127.0.0.1:{bind.port}
    zone: {bind.zone}.
    keyName: {bind.key_name}
    keySecretKey: {prefix}/{secret_key}
    ttl: {ttl}
"""


@pytest.fixture
def cluster(store: KVStore, consul_config, role_config, bind: BindServer, prefix: str, caplog) -> Iterator[dict]:
    """Gateway document, TSIG secret, two routes, a held leader lock; a writer with the controller's token."""
    caplog.set_level(logging.DEBUG, logger="meshop")
    store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.secret)
    store.put(keys.DESIRED_GATEWAY, gateway_doc(bind, prefix, "secrets/meshop-dns/tsig"))
    put_routes(store, bind.zone)
    gw_config = role_config("gateway")
    gateways = Services(gw_config, make_client(gw_config))
    registered: list[str] = []
    with leading_writer(role_config) as writer:
        try:
            yield {
                "writer": writer,
                "gateways": gateways,
                "gateway_store": KVStore(gw_config),
                "registered": registered,
                "store": store,
                "readonly": role_config("readonly"),
            }
        finally:
            for service_id in sorted(set(registered)):
                gateways.deregister(service_id)


def add_gateway(cluster: dict, gid: str, address: str) -> FakeGatewayEndpoint:
    endpoint = FakeGatewayEndpoint().start()
    target = f"127.0.0.1:{endpoint.port}"
    registration = gateway_registration(gid, address, target, target, interval=0.5)
    kept = presence(cluster["gateways"], registration, cluster["gateway_store"])
    kept.ensure()  # register, then hold the claim (the endpoint serves already)
    kept.hold()
    cluster["registered"].append(f"meshop-gateway-{gid}")
    return endpoint


def records(bind: BindServer) -> dict[str, list[str]]:
    return {name: bind.query(name, "A") for name in ("web", "api")}


def status(store: KVStore) -> DnsStatus | None:
    entry = store.get(keys.STATUS_DNS)
    return DnsStatus.from_dict(loads_json(entry.value)) if entry else None


def expect(bind: BindServer, want: dict[str, list[str]], what: str, timeout: float = 20.0) -> None:
    wait_until(lambda: records(bind) == want, timeout=timeout, what=f"{what}: {want} (have {records(bind)})")


def test_records_follow_gateway_health(cluster: dict, bind: BindServer, caplog) -> None:
    foreign = foreign_part(bind.records())  # rdata and TTL of every record meshop does not own
    store = cluster["store"]
    expect(bind, {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}, "no gateway yet: direct to nodes")
    g1 = add_gateway(cluster, "g1", "127.0.0.21")
    expect(bind, {"web": ["127.0.0.21"], "api": ["127.0.0.21"]}, "gateway added")
    g2 = add_gateway(cluster, "g2", "127.0.0.22")
    expect(bind, {"web": ["127.0.0.21", "127.0.0.22"], "api": ["127.0.0.21", "127.0.0.22"]}, "second gateway")
    assert bind.ttl("web", "A") == 30
    st = wait_until(lambda: (s := status(store)) and s.gateways == ("g1", "g2") and s, timeout=10, what="status")
    assert st.mode == "gateways" and st.last_error == "" and st.names == 2
    report = build_report(read_snapshot(cluster["readonly"]))  # what `meshop status` shows
    assert [(g.gateway_id, g.address, g.health, g.in_dns) for g in report.gateways] == [
        ("g1", "127.0.0.21", "passing", True),
        ("g2", "127.0.0.22", "passing", True),
    ]
    assert "-> gateways g1, g2; last update" in str(dns_line(report))
    feed = StatusWatch(cluster["readonly"]).start()  # what `meshop status --watch` draws
    try:
        wait_until(lambda: all(w.wait_ready(0) for w in feed.watches()), 10, what="the status watches")
        watched = build_report(feed.snapshot())
        assert [g.gateway_id for g in watched.gateways] == ["g1", "g2"] and watched.dns == report.dns
    finally:
        feed.stop()

    g1.kill()
    expect(bind, {"web": ["127.0.0.22"], "api": ["127.0.0.22"]}, "g1 killed")
    g2.kill()
    expect(bind, {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}, "both killed: direct to nodes")
    wait_until(lambda: (status(store) or DnsStatus()).mode == "direct", timeout=10, what="status says direct")

    back = add_gateway(cluster, "g1", "127.0.0.21")
    expect(bind, {"web": ["127.0.0.21"], "api": ["127.0.0.21"]}, "g1 back")
    back.kill()

    assert foreign_part(bind.records()) == foreign
    kinds = {e.kind for e in EventLog(store, "test").recent(200) if e.object.startswith("dns/")}
    assert {"DnsRecordCreated", "DnsRecordUpdated"} <= kinds
    assert metrics.dns_updates_total.labels("update", "ok")._value.get() > 0
    assert bind.secret not in caplog.text


def test_wrong_tsig_key_is_a_clear_status_and_no_change(cluster: dict, bind: BindServer, caplog) -> None:
    store = cluster["store"]
    expect(bind, {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}, "first records")
    refused = metrics.dns_updates_total.labels("update", "refused")._value.get()
    store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.other_secret)  # a wrong secret for the key name
    g1 = add_gateway(cluster, "g1", "127.0.0.21")
    try:
        st = wait_until(
            lambda: (s := status(store)) and "refused TSIG key meshop-key" in s.last_error and s,
            timeout=20,
            what="status/dns names the refused key",
        )
    finally:
        g1.kill()
    assert records(bind) == {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}
    assert refused == metrics.dns_updates_total.labels("update", "refused")._value.get()  # refused at the read
    assert metrics.dns_failing._value.get() == 1  # MeshopDnsFailing's input
    failed = [e for e in EventLog(store, "test").recent(200) if e.kind == "DnsUpdateFailed"]
    assert failed and ("BADSIG" in failed[-1].message or "signature" in failed[-1].message)
    everything = caplog.text + str(st) + " ".join(e.message for e in failed)
    assert bind.secret not in everything and bind.other_secret not in everything


@pytest.mark.parametrize(
    ("secret_key", "error"),
    [
        ("secrets/web/tsig", "must lie in <prefix>/secrets/meshop-dns/"),  # refused by validation
        ("../other/secrets/meshop-dns/tsig", "is outside"),  # valid shape, another prefix: refused by the reader
    ],
    ids=["another-folder", "another-prefix"],
)
def test_secret_outside_its_folder_is_refused(
    cluster: dict, bind: BindServer, prefix: str, secret_key: str, error: str
) -> None:
    store = cluster["store"]
    expect(bind, {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}, "first records")
    store.put("secrets/web/tsig", bind.secret)
    doc = gateway_doc(bind, prefix, "secrets/web/tsig", ttl=45).replace(f"{prefix}/secrets/web/tsig", "KEY")
    store.put(keys.DESIRED_GATEWAY, doc.replace("KEY", secret_key.replace("../other", "other")))
    wait_until(lambda: error in (status(store) or DnsStatus()).last_error, timeout=20, what="refused secret key")
    assert "spec.dns.keySecretKey" in status(store).last_error
    assert records(bind) == {"web": ["127.0.1.1", "127.0.1.2"], "api": ["127.0.1.2"]}
    assert bind.ttl("web", "A") == 30  # the TTL change was not sent


def test_a_writer_without_the_leader_lock_changes_nothing(
    store: KVStore, role_config, bind: BindServer, prefix: str
) -> None:
    store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.secret)
    store.put(keys.DESIRED_GATEWAY, gateway_doc(bind, prefix, "secrets/meshop-dns/tsig"))
    host = f"web.{bind.zone}"
    store.put(keys.route(host), dumps(RouteRecord(host, "web", "/", (Upstream("n1", NODES["n1"], 8080, True),))))
    ctl = role_config("controller")
    ctl_store = KVStore(ctl)
    writer = DnsWriter(
        ctl_store, Services(ctl, ctl_store.client), lambda: None, local_cluster=True, resync=0.2, trust_records=True
    )
    writer.start()
    try:
        wait_until(lambda: writer.loop.passes >= 5, timeout=20, what="five passes as a standby")
    finally:
        writer.stop()
    assert bind.query("web", "A") == [] and store.get(keys.STATUS_DNS) is None
