"""``meshop node remove``'s steps: order, what each touches, bad names refused. Pure."""

from __future__ import annotations

import shlex

import pytest

from meshop.bootstrap.removal import plan_removal
from meshop.model.acl import AclInputError


def test_steps_in_order_and_scoped_to_the_node():
    before, on_node, after = plan_removal("n1", "meshop")
    assert [c.name.split(" ")[0] for c in before] == ["node"] and "drain n1" in before[0].apply
    assert "systemctl disable --now" in on_node[0].apply
    names = [c.name for c in after]
    assert names[0] == "tokens of node n1 revoked" and names[1] == "ACL policy meshop-meshop-agent-n1 deleted"
    assert names[2] == "Consul forgot member n1" and names[3].startswith("records of node n1 deleted")
    records = after[3].apply
    for key in ("meshop/nodes/n1", "meshop/fences/n1", "meshop/status/nodes/n1", "meshop/desired/nodes/n1"):
        assert f" {key} " in f" {records} " or records.endswith(key)
    assert "-recurse meshop/observed/n1/" in records
    assert "-recurse meshop/nodes/n1" not in records  # never a prefix delete that would take n10's records
    descriptions = shlex.split(after[0].apply)[-2:]
    assert descriptions == ["meshop agent for prefix meshop on node n1", "meshop consul agent n1"]


@pytest.mark.parametrize("node", ["N1", "n1; rm -rf /", "n1/../n2", ""], ids=["upper", "shell", "path", "empty"])
def test_bad_node_names_are_refused(node):
    with pytest.raises(AclInputError):
        plan_removal(node, "meshop")
