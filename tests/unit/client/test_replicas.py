"""Finding replicas from hostile observed/node records, and the remote commands built from them; pure."""

from __future__ import annotations

import json
import shlex

import pytest

from meshop.cli.safe import strip_terminal
from meshop.client.replicas import check_since, exec_command, find, logs_command
from meshop.consul.kv import Entry, Listing
from meshop.errors import DocumentError
from meshop.model import records

ID1, ID2 = "a" * 64, "b" * 64


def _listing(items: dict[str, object]) -> Listing:
    entries = tuple(Entry(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 1) for k, v in items.items())
    return Listing(1, entries)


def _obs(node: str, *containers: tuple[str, int, str], service: str = "web") -> dict:
    states = tuple(
        records.ContainerState(id=i, name="n", replica=r, image="img", state=s, health="none", spec_hash="h")
        for i, r, s in containers
    )
    return records.Observed(service, node, "h", 1, 1, states).to_dict()


NODES = {
    "nodes/n1": {"name": "n1", "address": "100.64.0.1"},
    "nodes/n2": {"name": "n2", "address": "100.64.0.2"},
    "nodes/lo": {"name": "lo", "address": "127.0.0.1"},
    "nodes/liar": {"name": "n1", "address": "100.64.0.9"},  # claims another node's name
}


@pytest.mark.parametrize(
    ("observed", "kw", "expected", "skipped"),
    [
        (
            {"observed/n1/web": _obs("n1", (ID1, 0, "running")), "observed/n2/web": _obs("n2", (ID2, 1, "running"))},
            {},
            [("n1", 0, ID1, "100.64.0.1"), ("n2", 1, ID2, "100.64.0.2")],
            "",
        ),
        (
            {"observed/n1/web": _obs("n1", (ID1, 0, "running")), "observed/n2/web": _obs("n2", (ID2, 1, "running"))},
            {"node": "n2"},
            [("n2", 1, ID2, "100.64.0.2")],
            "",
        ),
        (
            {"observed/n1/web": _obs("n1", (ID1, 0, "running"), (ID2, 1, "running"))},
            {"replica": 1},
            [("n1", 1, ID2, "100.64.0.1")],
            "",
        ),
        ({"observed/n1/api": _obs("n1", (ID1, 0, "running"), service="api")}, {}, [], ""),
        ({"observed/n1/web": _obs("n1", ("$(reboot)", 0, "running"))}, {}, [], "not a Docker id"),
        ({"observed/n1/web": _obs("n1", ("A" * 64, 0, "running"))}, {}, [], "not a Docker id"),
        ({"observed/lo/web": _obs("lo", (ID1, 0, "running"))}, {}, [], "loopback"),
        (
            {"observed/lo/web": _obs("lo", (ID1, 0, "running"))},
            {"local_cluster": True},
            [("lo", 0, ID1, "127.0.0.1")],
            "",
        ),
        ({"observed/n9/web": _obs("n9", (ID1, 0, "running"))}, {}, [], "no node record"),
        ({"observed/n1/web": b"{not json"}, {}, [], "unreadable"),
        ({"observed/N_1/web": _obs("n1", (ID1, 0, "running"))}, {}, [], ""),
    ],
    ids=[
        "two-nodes",
        "by-node",
        "by-replica",
        "other-service",
        "shell-in-id",
        "upper-id",
        "loopback-address",
        "local-cluster",
        "no-node-record",
        "garbage",
        "bad-node-key",
    ],
)
def test_find(observed, kw, expected, skipped):
    """With ``--trust-node-records`` (no inventory): the record's address, when it passes the rule."""
    found = find("web", _listing(observed), _listing(NODES), trust_records=True, **kw)
    assert [(r.node, r.replica, r.container_id, r.address) for r in found.replicas] == expected
    if skipped:
        assert any(skipped in s for s in found.skipped), found.skipped


def test_commands_quote_every_argument():
    assert logs_command(ID1, follow=True, since="10m", tail=5) == (
        f"docker logs --timestamps --follow --since 10m --tail 5 {ID1} 2>&1"
    )
    cmd = exec_command(ID1, ["sh", "-c", "echo $HOME; rm -rf /"], tty=False, interactive=True)
    assert shlex.split(cmd) == ["docker", "exec", "-i", ID1, "sh", "-c", "echo $HOME; rm -rf /"]


@pytest.mark.parametrize("since", ["10m", "1h30m", "2026-12-01", "2026-12-01T10:00:00Z", "1764583200"])
def test_since_accepted(since):
    assert check_since(since) == since


@pytest.mark.parametrize("since", ["10 m", "$(id)", "--follow", "yesterday"])
def test_since_refused(since):
    with pytest.raises(DocumentError, match="--since"):
        check_since(since)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]0;pwned\x07title", "title"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b[2J\x1b[Hclear", "clear"),
        ("a\rb", "a\\x0db"),
        ("\u202eevil", "\\u202eevil"),
        ("\x9b31mc1", "c1"),
        ("\x1bPdcs-string\x1b\\after", "after"),
        ("plain \t text", "plain \\x09 text"),
    ],
    ids=["sgr", "osc-title", "osc8-link", "clear-screen", "cr", "bidi", "c1-csi", "dcs", "tab"],
)
def test_strip_terminal(raw, shown):
    assert strip_terminal(raw) == shown


def test_ssh_goes_to_the_inventory_address_never_to_a_forged_record():
    """Issue 24: n1's record claims 100.64.0.1 (say the gateway host); the operator's inventory says
    100.64.0.11. n2 has no inventory entry: it is skipped rather than dialled at its own word."""
    observed = {"observed/n1/web": _obs("n1", (ID1, 0, "running")), "observed/n2/web": _obs("n2", (ID2, 1, "running"))}
    inventory = _listing({"inventory/nodes/n1": {"addresses": ["100.64.0.11"]}})
    found = find("web", _listing(observed), _listing(NODES), inventory=inventory)
    assert [(r.node, r.address) for r in found.replicas] == [("n1", "100.64.0.11")]
    assert any("n2: no entry in inventory/nodes/" in s for s in found.skipped), found.skipped
    assert any("n1: claims '100.64.0.1' outside its inventory entry" in s for s in found.skipped), found.skipped


@pytest.mark.parametrize("forged", ["127.1", "0", "2130706433", "0x7f.1"])
def test_numeric_host_names_are_never_dialled(forged):
    nodes = _listing({"nodes/n1": {"name": "n1", "address": forged}})
    found = find("web", _listing({"observed/n1/web": _obs("n1", (ID1, 0, "running"))}), nodes, trust_records=True)
    assert found.replicas == ()
    assert any("shorthand" in s for s in found.skipped), found.skipped
