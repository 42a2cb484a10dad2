"""The ACL token reaches Consul from the flag or CONSUL_HTTP_TOKEN; a denial is a clear error."""

from __future__ import annotations

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
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
