"""The ACL token reaches Consul from the flag or CONSUL_HTTP_TOKEN; a denial is a clear error."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from meshop.consul.config import ConsulConfig
from meshop.consul.secrets import SecretReader
from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore, TxnOp
from meshop.errors import ConsulAccessDenied
from tests.support.consul_server import ConsulServer


def test_without_a_token_access_is_denied_with_a_hint(acl_consul: ConsulServer) -> None:
    store = KVStore(ConsulConfig.from_env({}, addr=acl_consul.addr))
    with pytest.raises(ConsulAccessDenied, match="ACL permission denied; set CONSUL_HTTP_TOKEN / --token"):
        store.put("k", "v")


def test_token_from_the_environment_is_used(acl_consul: ConsulServer) -> None:
    store = KVStore(ConsulConfig.from_env({"CONSUL_HTTP_ADDR": acl_consul.addr, "CONSUL_HTTP_TOKEN": acl_consul.token}))
    store.put("k", "from-env")
    assert store.get("k").value == b"from-env"


def test_token_flag_wins_over_the_environment(acl_consul: ConsulServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "not-a-valid-token")
    store = KVStore(ConsulConfig.from_env(None, addr=acl_consul.addr, token=acl_consul.token))
    store.put("k", "from-flag")
    assert store.get("k").value == b"from-flag"


def test_every_call_meshop_makes_carries_the_token(acl_consul: ConsulServer, prefix: str) -> None:
    """Each method of meshop's Consul layer against the ACL-enabled Consul, every request recorded on the
    wire: all carry the token (py-consul's own ``txn.put`` sends none; see tests/security)."""
    store = KVStore(ConsulConfig.from_env({}, addr=acl_consul.addr, token=acl_consul.token, prefix=prefix))
    sent: list[requests.PreparedRequest] = []
    store.client.http.session.hooks["response"].append(lambda response, *_a, **_k: sent.append(response.request))
    services, sessions = Services(store.config, store.client), Sessions(store)
    check = CheckSpec(f"{prefix}-ttl", "ttl", ttl="30s", initial_status="passing")
    services.register(Registration(f"{prefix}-svc", f"{prefix}-svc", "127.0.0.1", 1, checks=(check,)))
    services.ttl_pass(check.check_id)
    services.ttl_fail(check.check_id)
    services.local()
    services.checks(f"{prefix}-svc")
    services.all_checks()
    services.instances(f"{prefix}-svc")
    services.passing(f"{prefix}-svc")
    services.deregister(f"{prefix}-svc")
    store.put("a", "1")
    store.cas("a", "2", store.get("a").modify_index)
    store.get_blocking("a")
    store.list("")
    store.keys("")
    store.transact([TxnOp.set("b", "1"), TxnOp.delete("a")])
    store.delete("b")
    store.delete_tree("x/")
    session = sessions.create(f"{prefix}-s", checks=[])
    lock = sessions.acquire("leader", session)
    assert lock is not None
    sessions.renew(session)
    sessions.alive(session)
    sessions.named(f"{prefix}-s")
    sessions.release(lock)
    sessions.destroy(session)
    SecretReader(store.config, store.client).get("web", f"{prefix}/secrets/web/k")
    paths = {urllib.parse.urlsplit(r.url or "").path.split("/")[2] for r in sent}
    assert {"kv", "txn", "agent", "health", "session"} <= paths
    missing = [f"{r.method} {r.url}" for r in sent if r.headers.get("X-Consul-Token") != acl_consul.token]
    assert not missing, missing
