"""Each role's token, against the real default-deny Consul of the session, is refused outside its scope;
the token reaches Consul on transactions too (py-consul's own ``txn.put`` sends none).

Tokens and policies are made by meshop's own ``AclAdmin`` (what ``meshop acl init/token/sync`` run),
for the test's own prefix.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import consul
import pytest

from meshop.cli.main import run
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Registration, Services
from meshop.consul.store import KVStore, TxnOp
from meshop.errors import ConsulAccessDenied
from meshop.model import keys
from meshop.model.records import Capacity, NodeRecord, dumps
from tests.support import acl
from tests.support.consul_server import ConsulServer

Store = Callable[..., KVStore]


@pytest.fixture
def as_role(consul_server: ConsulServer, prefix: str) -> Store:
    """``as_role(role, node=None)``: a KVStore with that role's token for the test's prefix."""
    roles = acl.roles(consul_server.addr, prefix)
    assert roles is not None, "the session Consul must run with ACLs"
    return lambda role, node=None: KVStore(roles.config(role, node))


def denied(call: Callable[[], object]) -> str:
    with pytest.raises(ConsulAccessDenied) as caught:
        call()
    return str(caught.value)


def test_a_transaction_carries_the_token(consul_server: ConsulServer, as_role: Store, prefix: str) -> None:
    agent = as_role("agent", "n1")
    agent.transact([TxnOp.set(keys.observed("n1", "web"), "{}")])  # on main: refused, sent as anonymous
    assert agent.get(keys.observed("n1", "web")) is not None
    # the library's own call still sends no token: what every controller and agent transaction did before
    raw = consul.Consul(host="127.0.0.1", port=consul_server.http_port, token=agent.config.token)
    op = {"KV": {"Verb": "set", "Key": f"{prefix}/observed/n1/db", "Value": base64.b64encode(b"{}").decode()}}
    with pytest.raises(consul.ConsulException, match=r"(?i)permission denied"):
        raw.txn.put([op])


def test_a_denied_transaction_says_access_denied_not_conflict(as_role: Store) -> None:
    message = denied(lambda: as_role("agent", "n1").transact([TxnOp.set(keys.observed("n2", "web"), "{}")]))
    assert "ACL permission denied" in message


def test_agent_of_n1_stays_on_n1(store: KVStore, as_role: Store) -> None:
    store.put(keys.assignment("n2", "web"), "{}")
    agent = as_role("agent", "n1")
    agent.put(keys.node("n1"), "{}")
    assert agent.cas(keys.fence("n1"), "{}", 0)  # its fence, read with its assignments in one transaction
    assignments, fence = agent.list_together([keys.node_assignments("n1"), keys.fence("n1")])
    assert assignments.entries == ()
    assert [e.key for e in fence.entries] == [keys.fence("n1")]
    denied(lambda: agent.put(keys.fence("n2"), "{}"))
    denied(lambda: agent.put(keys.node("n2"), "{}"))
    denied(lambda: agent.transact([TxnOp.set(keys.observed("n2", "web"), "{}")]))
    denied(lambda: agent.get(keys.assignment("n2", "web")))
    assert agent.list(keys.ASSIGNMENTS).entries == ()  # another node's assignments are filtered out
    denied(lambda: agent.put(keys.assignment("n1", "web"), "{}"))
    denied(lambda: agent.put(keys.desired_service("web"), "{}"))
    denied(lambda: agent.put(keys.route("a.example.com"), "{}"))
    denied(lambda: agent.put(keys.LEADER, "me"))


def test_agent_reads_only_the_secrets_of_what_is_assigned_to_it(
    store: KVStore, as_role: Store, consul_server: ConsulServer, prefix: str
) -> None:
    store.put("secrets/web/password", "w")
    store.put("secrets/db/password", "d")
    agent = as_role("agent", "n1")
    roles = acl.roles(consul_server.addr, prefix)
    assert roles is not None
    denied(lambda: agent.get("secrets/web/password"))  # nothing assigned yet
    store.put(keys.assignment("n1", "web"), "{}")
    roles.sync()
    entry = agent.get("secrets/web/password")
    assert entry is not None and entry.value == b"w"
    denied(lambda: agent.get("secrets/db/password"))  # assigned elsewhere or nowhere
    denied(lambda: agent.put("secrets/web/password", "mine"))
    store.delete(keys.assignment("n1", "web"))
    roles.sync()
    denied(lambda: agent.get("secrets/web/password"))  # moved away: readable no more


def test_agent_registers_only_its_own_and_its_assigned_services(
    store: KVStore, as_role: Store, consul_server: ConsulServer, prefix: str
) -> None:
    node = f"{prefix}-n1"
    agent = as_role("agent", node)
    services = Services(agent.config, agent.client)
    own = Registration(f"meshop-agent-{node}", f"meshop-agent-{node}", "127.0.0.1", 1, meta={"node": node})
    services.register(own)
    try:
        web = Registration(f"meshop-{node}-web-0", f"{prefix}-web", "127.0.0.1", 2, meta={"node": node})
        denied(lambda: services.register(web))
        denied(lambda: services.register(Registration("meshop-controller-x", "meshop-controller", "127.0.0.1", 3)))
        store.put(keys.assignment(node, f"{prefix}-web"), "{}")
        roles = acl.roles(consul_server.addr, prefix)
        assert roles is not None
        roles.sync()
        services.register(web)
        services.deregister(web.service_id)
    finally:
        services.deregister(own.service_id)


def test_controller_and_gateway_stay_in_their_lanes(store: KVStore, as_role: Store) -> None:
    store.put("secrets/web/password", "w")
    store.put(keys.desired_service("web"), "{}")
    controller = as_role("controller")
    assert controller.get(keys.desired_service("web")) is not None
    denied(lambda: controller.get("secrets/web/password"))
    denied(lambda: controller.put(keys.desired_service("web"), "{}"))
    denied(lambda: controller.put(keys.node("n1"), "{}"))
    denied(lambda: controller.transact([TxnOp.set(keys.observed("n1", "web"), "{}")]))
    controller.transact([TxnOp.set(keys.route("a.example.com"), "{}"), TxnOp.set(keys.assignment("n1", "web"), "{}")])

    gateway = as_role("gateway")
    assert gateway.get(keys.route("a.example.com")) is not None
    denied(lambda: gateway.put(keys.DESIRED_GATEWAY, "{}"))
    denied(lambda: gateway.put(keys.route("a.example.com"), "{}"))
    denied(lambda: gateway.get(keys.desired_service("web")))
    denied(lambda: gateway.get("secrets/web/password"))


def test_prometheus_token_discovers_and_reads_nothing_else(as_role: Store) -> None:
    prometheus = as_role("prometheus")
    Services(prometheus.config, prometheus.client).instances("meshop-metrics")
    denied(lambda: prometheus.get(keys.desired_service("web")))
    denied(lambda: prometheus.put("anything", "x"))


def cli(consul_server: ConsulServer, prefix: str, token: str, *args: str) -> int:
    return run(["--consul-addr", consul_server.addr, "--prefix", prefix, "--token", token, *args])


def test_readonly_cli_reads_but_cannot_apply_and_operator_can(
    consul_server: ConsulServer, prefix: str, store: KVStore, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.put(keys.node("n1"), dumps(NodeRecord("n1", "127.0.0.1", {}, Capacity(1.0, 1024**3), version="t")))
    roles = acl.roles(consul_server.addr, prefix)
    assert roles is not None
    doc = tmp_path / "web.yaml"
    doc.write_text(
        "apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {image: 'busybox:1', command: [/bin/sleep], args: ['60']}\n"
    )
    readonly, operator = roles.token("readonly"), roles.token("operator")
    assert cli(consul_server, prefix, readonly, "apply", "-f", str(doc)) == 2
    err = capsys.readouterr().err
    assert "ACL permission denied" in err and "Traceback" not in err
    assert cli(consul_server, prefix, operator, "apply", "-f", str(doc)) == 0
    assert cli(consul_server, prefix, readonly, "get", "services") == 0
    assert "web" in capsys.readouterr().out
    assert cli(consul_server, prefix, readonly, "nodes", "cordon", "n1") == 2
    assert cli(consul_server, prefix, operator, "nodes", "cordon", "n1") == 0
    assert cli(consul_server, prefix, readonly, "delete", "service", "web") == 2
    assert cli(consul_server, prefix, operator, "delete", "service", "web") == 0


def test_acl_commands_are_idempotent_and_print_only_the_secret(
    consul_server: ConsulServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    master = consul_server.token
    try:
        assert cli(consul_server, prefix, master, "acl", "init") == 0
        first = capsys.readouterr().out.splitlines()
        assert len(first) == 5 and all(line.endswith(" written") for line in first)
        assert cli(consul_server, prefix, master, "acl", "init") == 0
        assert all(line.endswith(" unchanged") for line in capsys.readouterr().out.splitlines())
        assert cli(consul_server, prefix, master, "acl", "token", "agent", "--node", "n1") == 0
        secret = capsys.readouterr().out
        assert cli(consul_server, prefix, master, "acl", "token", "agent", "--node", "n1") == 0
        assert capsys.readouterr().out == secret and secret.count("\n") == 1
        agent = KVStore(ConsulConfig.from_env({}, addr=consul_server.addr, token=secret.strip(), prefix=prefix))
        agent.put(keys.node("n1"), "{}")
        denied(lambda: agent.put(keys.node("n2"), "{}"))
        assert cli(consul_server, prefix, secret.strip(), "acl", "init") == 2  # not a management token
        assert "ACL permission denied" in capsys.readouterr().err
    finally:
        acl.RoleTokens(consul_server.addr, prefix, master).purge()


def test_a_policy_of_another_prefix_with_the_same_name_is_never_overwritten(
    consul_server: ConsulServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``a/b`` and ``a-b`` map to the same policy name: the second prefix is refused, the first kept."""
    master = consul_server.token
    first, second = f"{prefix}/x", f"{prefix}-x"
    try:
        assert cli(consul_server, first, master, "acl", "init") == 0
        capsys.readouterr()
        assert cli(consul_server, second, master, "acl", "token", "controller") == 1
        err = capsys.readouterr().err
        assert f"ACL policy meshop-{prefix}-x-controller exists but is not this one" in err
        assert cli(consul_server, first, master, "acl", "init") == 0
        assert all(line.endswith(" unchanged") for line in capsys.readouterr().out.splitlines())
    finally:
        acl.RoleTokens(consul_server.addr, first, master).purge()
