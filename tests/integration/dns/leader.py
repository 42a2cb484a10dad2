"""A DNS writer as the leading controller runs it (the controller's token, a held leader lock), and the
routes it turns into records: shared by the writer tests of every provider."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import RouteRecord, Upstream, dumps
from meshop.operator.dns import DnsWriter

NODES = {"n1": "127.0.1.1", "n2": "127.0.1.2"}


def put_routes(store: KVStore, zone: str) -> None:
    """web.<zone> served on n1 and n2, api.<zone> on n2."""
    for host, nodes in ((f"web.{zone}", ["n1", "n2"]), (f"api.{zone}", ["n2"])):
        upstreams = tuple(Upstream(n, NODES[n], 8080, True) for n in nodes)
        store.put(keys.route(host), dumps(RouteRecord(host, host.split(".")[0], "/", upstreams)))


@contextlib.contextmanager
def leading_writer(
    role_config: Callable[[str], ConsulConfig], resync: float = 2.0, wait: str = "2s"
) -> Iterator[DnsWriter]:
    """A started writer with the controller's token that holds the leader lock; stopped and released after."""
    ctl = role_config("controller")
    ctl_store = KVStore(ctl)
    sessions = Sessions(ctl_store)
    lock = sessions.acquire(keys.LEADER, sessions.create("dns-test"), "{}")
    assert lock is not None
    # routes are written by hand in these tests, for nodes with no inventory entry: trusted as
    # --trust-node-records does (the inventory rule has its own attack test: tests/security/test_node_inventory.py)
    writer = DnsWriter(
        ctl_store,
        Services(ctl, ctl_store.client),
        lambda: lock,
        local_cluster=True,
        resync=resync,
        wait=wait,
        trust_records=True,
    ).start()
    try:
        yield writer
    finally:
        writer.stop()
        sessions.release(lock)
