"""What ``meshop acl sync`` derives from KV (pure), and ``meshop acl policies`` (renders, no Consul)."""

from __future__ import annotations

import pytest

from meshop.cli.main import run
from meshop.client.acl import ACL_SYNC, keeps_legacy_name, placement_of, should_sync
from meshop.consul.store import Entry, Listing
from meshop.model import acl as policies
from meshop.operator.election import CONTROLLER, holder_service_id


def listing(*keys: str) -> Listing:
    return Listing(1, tuple(Entry(key, b"{}", 1) for key in keys))


def test_placement_per_node_skips_keys_that_are_not_node_and_service() -> None:
    assignments = listing("assignments/n1/web", "assignments/n1/db", "assignments/n2/web", "assignments/n3")
    observed = listing(
        "observed/n1/old",
        'observed/n1/x" { policy = "write" }',  # an agent's hostile key: never a name in a policy
        "observed/n1/a/b",
        "observed/N1/web",
        "observed/n2/web",
    )
    placement = placement_of(assignments, observed)
    assert placement.of("n1") == ({"web", "db"}, {"old"})
    assert placement.of("n2") == ({"web"}, {"web"})
    assert placement.of("n3") == (set(), set())
    assert "N1" not in placement.running


def test_acl_policies_prints_every_role_without_consul(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--consul-addr", "127.0.0.1:1", "--prefix", "org/meshop", "acl", "policies"]) == 0
    out = capsys.readouterr().out
    for name in ("controller", "gateway", "agent-node", "readonly", "operator", "prometheus"):
        assert f"# meshop-org-meshop-{name}: " in out
    assert 'key_prefix "org/meshop/secrets/" {\n  policy = "deny"\n}' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", 'a"b', "acl", "policies"], "prefix 'a\"b': ACL rules need path segments"),
        (["acl", "policies", "--role", "agent", "--node", "N_1"], "node 'N_1' is not an RFC 1123 label"),
        (["acl", "token", "root"], "'root' is not one of"),
    ],
    ids=["bad-prefix", "bad-node", "bad-role"],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--consul-addr", "127.0.0.1:1", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


PLACED = placement_of(listing("assignments/n1/web"), listing())
MOVED = placement_of(listing("assignments/n2/web"), listing("observed/n1/web"))


@pytest.mark.parametrize(
    ("active", "woken", "placement", "synced", "expected"),
    [
        pytest.param(False, True, MOVED, PLACED, False, id="standby-never-writes-on-a-change"),
        pytest.param(False, False, MOVED, None, False, id="standby-never-writes-on-a-resync-tick"),
        pytest.param(True, True, MOVED, PLACED, True, id="active-follows-a-change"),
        pytest.param(True, True, PLACED, PLACED, False, id="active-skips-an-unchanged-wake-up"),
        pytest.param(True, True, PLACED, None, True, id="just-elected-syncs-in-full"),
        pytest.param(True, False, PLACED, PLACED, True, id="resync-tick-reads-every-policy-back"),
    ],
)
def test_only_the_elected_syncer_writes(active, woken, placement, synced, expected) -> None:
    assert should_sync(active=active, woken=woken, placement=placement, synced=synced) is expected


def test_acl_sync_office_is_not_the_controllers() -> None:
    """Its own lock, service and metrics label; it never moves the controllers' ``meshop_leader`` gauge."""
    assert (ACL_SYNC.key, ACL_SYNC.service, ACL_SYNC.gauge) == ("locks/acl-sync", "meshop-acl-sync", False)
    assert ACL_SYNC.key != CONTROLLER.key and ACL_SYNC.service != CONTROLLER.service
    assert holder_service_id(ACL_SYNC.service, "meshop", "n1") == "meshop-acl-sync-n1"
    assert holder_service_id(ACL_SYNC.service, "org/x", "n1") == "meshop-acl-sync-org-x-n1"


def test_acl_sync_watch_id_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--consul-addr", "127.0.0.1:1", "acl", "sync", "--watch", "--id", "a b"]) != 0
    assert "--id 'a b': letters, digits" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("legacy_policy", "upgraded", "kept"),
    [
        pytest.param(True, set(), True, id="old-agent-keeps-the-shared-name"),
        pytest.param(True, {"n1"}, False, id="upgraded-agent-loses-it"),
        pytest.param(True, {"n2"}, True, id="another-nodes-upgrade-changes-nothing"),
        pytest.param(False, set(), False, id="never-added-to-a-policy-without-it"),
    ],
)
def test_the_shared_agent_name_is_kept_only_until_the_node_is_upgraded(
    legacy_policy: bool, upgraded: set[str], kept: bool
) -> None:
    rules = policies.policy_rules("agent", "meshop", "n1", legacy=legacy_policy)
    assert keeps_legacy_name(rules, "n1", frozenset(upgraded)) is kept
