"""Issue 27: usage records are a node's word (party (b), a compromised node; (c), a container whose own
cgroup counters and names flow into them). A node writes only its own ``usage/<node>`` key; what it
writes there is checked by every reader: another node's name, markup for a service name, a counter out
of bounds or of the wrong type never reaches ``meshop top`` (nor the dashboard, which reads the same
rows), and what is shown is text.

Real default-deny Consul, role tokens made by ``AclAdmin``; ``meshop top`` run in-process with the
read-only token.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from meshop.cli.main import run
from meshop.consul.store import KVStore
from meshop.errors import ConsulAccessDenied
from meshop.model import keys
from meshop.model.records import ReplicaUsage, UsageRecord, dumps
from tests.support import acl


def top(addr: str, prefix: str, *args: str) -> str:
    argv = ["top", *args]
    token = acl.token_for(addr, prefix, argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert run(["--consul-addr", addr, "--prefix", prefix, *(["--token", token] if token else []), *argv]) == 0
    return out.getvalue()


def record(node: str, *replicas: ReplicaUsage, **kw: object) -> UsageRecord:
    base = UsageRecord(
        node=node, sampled_at=4e9, interval=10.0, refresh=30.0, cpu=10.0, cpus=2, memory=1, memory_total=2
    )
    return replace(base, replicas=replicas, **kw)  # type: ignore[arg-type]


@pytest.fixture
def agent_store(role_config: Callable[..., object], prefix: str) -> Callable[[str], KVStore]:
    return lambda node: KVStore(role_config("agent", node))  # type: ignore[arg-type]


def test_a_node_writes_only_its_own_usage_key(
    agent_store: Callable[[str], KVStore], store: KVStore, prefix: str
) -> None:
    n1, n2 = f"{prefix}-u1", f"{prefix}-u2"
    honest = dumps(record(n2, ReplicaUsage("web", 0, cpu=1.0, memory=10, memory_limit=100)))
    agent_store(n2).put(keys.usage(n2), honest)
    evil = agent_store(n1)
    with pytest.raises(ConsulAccessDenied):  # a key_prefix "usage/" grant would let n1 rewrite n2's usage
        evil.put(keys.usage(n2), dumps(record(n2, cpu=0.0)))
    with pytest.raises(ConsulAccessDenied):
        evil.delete(keys.usage(n2))
    with pytest.raises(ConsulAccessDenied):
        evil.put(keys.usage(n1) + "/x", dumps(record(n1)))  # exactly its key, nothing below it
    assert store.get(keys.usage(n2)).value.decode() == honest  # type: ignore[union-attr]


def test_hostile_usage_never_reaches_meshop_top(
    agent_store: Callable[[str], KVStore], consul_server: object, prefix: str
) -> None:
    n1, n2 = f"{prefix}-h1", f"{prefix}-h2"
    addr = consul_server.addr  # type: ignore[attr-defined]
    agent_store(n2).put(keys.usage(n2), dumps(record(n2, ReplicaUsage("web", 0, cpu=1.0, memory=10, memory_limit=100))))
    evil = agent_store(n1)
    evil.put(keys.usage(n1), dumps(record(n2, ReplicaUsage("web", 1, cpu=99.0))))  # poses as n2
    shown = json.loads(top(addr, prefix, "replicas", "-o", "json"))
    assert [(r["node"], r["replica"]) for r in shown if r["node"] in (n1, n2)] == [(n2, 0)]
    markup = "<img src=x onerror=alert(1)>"
    evil.put(
        keys.usage(n1),
        dumps(
            record(
                n1,
                ReplicaUsage("web", 0, cpu=5.0, memory=10, memory_limit=100),
                ReplicaUsage(markup, 0, cpu=5.0),
                ReplicaUsage("[bold red]x[/]", 0, cpu=5.0),
                ReplicaUsage("api", 0, cpu=5.0, memory=5 * 10**18),  # under 2**63, over any real memory
                ReplicaUsage("db", 0, cpu=float("1e300")),
            )
        ),
    )
    rows = json.loads(top(addr, prefix, "replicas", "-o", "json"))
    assert sorted((r["service"], r["node"]) for r in rows if r["node"] in (n1, n2)) == [("web", n1), ("web", n2)]
    table = top(addr, prefix, "replicas")
    assert "img" not in table and "bold" not in table and "e+" not in table
    evil.put(keys.usage(n1), dumps(record(n1, cpu=-1.0)))  # the node's own numbers wrong: the whole record out
    assert n1 not in {r["node"] for r in json.loads(top(addr, prefix, "nodes", "-o", "json"))}
    evil.put(keys.usage(n1), json.dumps({"node": n1, "sampledAt": "4e9", "cpu": True}))
    assert n1 not in {r["node"] for r in json.loads(top(addr, prefix, "nodes", "-o", "json"))}
