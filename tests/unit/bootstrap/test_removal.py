"""``meshop node remove``'s steps: order, what each touches, bad names refused. Pure."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshop.bootstrap import render
from meshop.bootstrap.removal import _DRAIN_WAIT, plan_removal
from meshop.model.acl import AclInputError


def test_steps_in_order_and_scoped_to_the_node():
    before, on_node, after = plan_removal("n1", "meshop")
    assert [c.name.split(" ")[0] for c in before] == ["node"] and "drain n1" in before[0].apply
    # a server node's standbys, and the management token its acl-sync standby held (issue 23)
    assert on_node[0].apply == (
        "for u in meshop-controller.service meshop-acl-sync.service; do systemctl disable --now -q $u 2>/dev/null; "
        "done; rm -f /etc/meshop/acl-sync.env"
    )
    assert "is-enabled -q meshop-controller.service meshop-acl-sync.service" in on_node[0].check  # client: done
    assert "[ ! -e /etc/meshop/acl-sync.env ]" in on_node[0].check
    assert on_node[1].apply == "systemctl disable --now -q meshop-agent.service meshop-fence.service consul.service"
    assert on_node[2].apply == "rm -rf /var/lib/meshop/agent"  # a re-added node starts unfenced, not Held
    assert "state_dir: /var/lib/meshop/agent\n" in render.agent_config(node="n1", address="100.64.0.11", labels={})
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


FAKE_CONSUL = """#!/bin/sh
# consul kv get -token-file=F [-keys] KEY, served from the folder $KV
shift 3
if [ "$1" = -keys ]; then [ -d "$KV/$2" ] && ls "$KV/$2" | sed "s|^|$2|"; exit 0; fi
[ -f "$KV/$1" ] && cat "$KV/$1"
"""


def _drain_wait(tmp_path: Path, kv: dict[str, str], limit: float, grace: float) -> subprocess.CompletedProcess[str]:
    for key, value in kv.items():
        (tmp_path / "kv" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "kv" / key).write_text(value)
    (tmp_path / "kv").mkdir(exist_ok=True)
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin" / "consul").write_text(FAKE_CONSUL)
    (tmp_path / "bin" / "consul").chmod(0o755)
    return subprocess.run(
        [sys.executable, "-c", _DRAIN_WAIT, "n2", "meshop", str(limit), str(grace)],
        env={"KV": str(tmp_path / "kv"), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


UNPLACEABLE = {
    "conditions": [
        {"type": "Scheduled", "status": "False", "reason": "NoMatchingNode",
         "message": "1/2 replicas placed; 0/1 nodes fit (already runs a replica (spread): n1)"},
    ]
}  # fmt: skip


def test_drain_wait_is_done_when_nothing_is_assigned(tmp_path: Path):
    assert _drain_wait(tmp_path, {"meshop/assignments/n1/web": "{}"}, 5, 0).returncode == 0


def test_drain_wait_fails_fast_naming_the_replica_that_cannot_leave(tmp_path: Path):
    kv = {"meshop/assignments/n2/whoami": "{}", "meshop/status/services/whoami": json.dumps(UNPLACEABLE)}
    started = time.monotonic()
    result = _drain_wait(tmp_path, kv, 600, 0)
    assert result.returncode == 1 and time.monotonic() - started < 10
    assert "node n2 cannot be drained" in result.stderr
    assert "whoami: 1/2 replicas placed; 0/1 nodes fit (already runs a replica (spread): n1)" in result.stderr


def test_drain_wait_gives_up_at_its_limit_naming_what_is_still_there(tmp_path: Path):
    result = _drain_wait(tmp_path, {"meshop/assignments/n2/web": "{}"}, 0, 0)
    assert result.returncode == 1 and "still assigned: web" in result.stderr
