"""The DNS writer with ``provider: powerdns`` against real Consul (ACLs, the controller's token) and a real
pdns_server: records written through the HTTP API, foreign records untouched (rdata and TTL); a wrong
API key and a missing zone each a clear status and event naming them, no change, the key nowhere in
logs, status or events."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from meshop.consul.events import EventLog
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import DnsStatus
from meshop.operator.dns import DnsWriter
from tests.integration.dns.leader import leading_writer, put_routes
from tests.integration.dns.test_writer import status
from tests.support.dns_zone import foreign_part
from tests.support.pdns_server import PdnsServer
from tests.support.procs import wait_until

SECRET = "secrets/meshop-dns/pdns-api-key"


def gateway_doc(pdns: PdnsServer, prefix: str, ttl: int = 30, zone: str | None = None) -> str:
    return f"""apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {{name: prod}}
spec:
  domains: [{pdns.zone}]
  tls: {{mode: internal}}
  dns:
    provider: powerdns
    apiUrl: {pdns.api_url}
    zone: {zone or pdns.zone}.
    keySecretKey: {prefix}/{SECRET}
    ttl: {ttl}
"""


@pytest.fixture
def writer(store: KVStore, role_config, pdns: PdnsServer, prefix: str, caplog) -> Iterator[DnsWriter]:
    caplog.set_level(logging.DEBUG, logger="meshop")
    store.put(f"{keys.SECRETS}meshop-dns/pdns-api-key", pdns.api_key)
    store.put(keys.DESIRED_GATEWAY, gateway_doc(pdns, prefix))
    put_routes(store, pdns.zone)
    with leading_writer(role_config, resync=1.0) as dns_writer:
        yield dns_writer


def addresses(pdns: PdnsServer) -> dict[str, tuple[int, tuple[str, ...]] | None]:
    records = pdns.records()
    return {name: records.get((name, "A")) for name in ("web", "api")}


DIRECT = {"web": (30, ("127.0.1.1", "127.0.1.2")), "api": (30, ("127.0.1.2",))}


def test_the_writer_keeps_the_zone_through_the_api_and_names_a_wrong_key_and_a_missing_zone(
    writer: DnsWriter, store: KVStore, pdns: PdnsServer, prefix: str, caplog
) -> None:
    foreign = foreign_part(pdns.records())
    wait_until(lambda: addresses(pdns) == DIRECT, timeout=20, what=f"direct records (have {addresses(pdns)})")
    st = wait_until(lambda: (s := status(store)) and s.names == 2 and s, timeout=10, what="status/dns")
    assert (st.provider, st.zone, st.mode, st.last_error) == ("powerdns", pdns.zone, "direct", "")
    assert foreign_part(pdns.records()) == foreign
    assert pdns.records()[("_meshop-owner.web", "TXT")] == (30, ('"heritage=meshop,meshop/owner=prod"',))

    wrong = "wrong-" + pdns.api_key[::-1]
    store.put(f"{keys.SECRETS}meshop-dns/pdns-api-key", wrong)
    store.put(keys.DESIRED_GATEWAY, gateway_doc(pdns, prefix, ttl=45))  # a change that would be sent
    st = wait_until(
        lambda: (s := status(store)) and "rejected the API key (HTTP 401)" in s.last_error and s,
        timeout=20,
        what="status/dns names the refused key",
    )
    assert addresses(pdns) == DIRECT  # the TTL change was not sent
    failed = [e for e in EventLog(store, "test").recent(200) if e.kind == "DnsUpdateFailed"]
    assert failed and "HTTP 401" in failed[-1].message
    everything = caplog.text + str(st) + " ".join(e.message for e in failed)
    assert pdns.api_key not in everything and wrong not in everything

    store.put(keys.DESIRED_GATEWAY, gateway_doc(pdns, prefix, ttl=45, zone="missing.test"))
    wait_until(  # the writer has the new document before the key is right again (it reads the key every pass)
        lambda: any(b"missing.test" in e.value for e in writer.gateway_watch.latest.entries),
        timeout=10,
        what="the writer's watch has the document",
    )
    store.put(f"{keys.SECRETS}meshop-dns/pdns-api-key", pdns.api_key)
    wait_until(
        lambda: (
            "zone missing.test (server localhost) not found (HTTP 404)" in (status(store) or DnsStatus()).last_error
        ),
        timeout=20,
        what="status/dns names the missing zone",
    )
    # the old zone keeps its records. Their TTL may be 45 by now: a pass that began before the watch had the
    # missing-zone document and read the key after it was put right applied the TTL-45 document, rightly.
    assert {name: found and found[1] for name, found in addresses(pdns).items()} == {
        name: found[1] for name, found in DIRECT.items()
    }

    store.put(keys.DESIRED_GATEWAY, gateway_doc(pdns, prefix, ttl=45))  # fixed: the pass goes through
    want = {"web": (45, ("127.0.1.1", "127.0.1.2")), "api": (45, ("127.0.1.2",))}
    wait_until(lambda: addresses(pdns) == want, timeout=20, what="records with the new TTL")
    wait_until(lambda: (status(store) or DnsStatus()).last_error == "", timeout=10, what="the error cleared")
    assert foreign_part(pdns.records()) == foreign
