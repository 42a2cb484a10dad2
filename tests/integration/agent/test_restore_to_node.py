"""``meshop volume restore SERVICE --to-node N --snapshot ID`` with two real agents, real Consul (ACL
tokens), real Docker volumes and real restic. The test plays the controller's part (placement's
``relocate`` is table-tested in tests/unit/operator/test_placement_relocate.py): the request is written
by the CLI, the assignment moves from A to B, and B's agent restores the chosen snapshot — not the
latest — into a fresh volume before the first start; A's copy stops and its volume is kept. The
holder's token may read the move, never write or delete it (the controller consumes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshop.client.volume_moves import wait_for_move
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.moves import parse_move
from meshop.model.records import MoveRequest, NodeStatus, ServiceStatus, dumps
from tests.integration.agent.helpers import SLEEPER, AgentFactory, assign
from tests.integration.agent.stateful import (
    backed_up,
    digest,
    document,
    put_password,
    running_on,
    snapshot_of,
    sync_acl,
    volume_folder,
)
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until


def test_restore_to_another_node_gives_the_snapshots_exact_bytes_and_keeps_the_old_volume(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    role_config: Any,
    docker_client: Any,
    start_agent: AgentFactory,
    start_other_agent: AgentFactory,
    node: str,
    other_node: str,
    tmp_path: Path,
    prefix: str,
) -> None:
    store = KVStore(consul_config)
    put_password(store, prefix, "db")
    spec = backed_up(tmp_path / "repo")  # failover: none (the default): only the command moves it
    store.put(keys.desired_service("db"), document("db", spec))
    store.put(keys.desired_service("plain"), document("plain", dict(SLEEPER)))
    store.put(keys.service_status("db"), dumps(ServiceStatus("db", 1, placement={node: 1}, replicas=1)))
    start_agent(fence=True)
    assign(store, node, "db", spec)
    sync_acl(consul_server, prefix)

    def snapshot() -> str:
        return snapshot_of(store, node, "db")

    chosen = wait_until(snapshot, 60, what="a first backup on node A")
    assert isinstance(chosen, str)
    old = volume_folder(docker_client, f"meshop-{node}-db-data")
    at_snapshot = digest(old)
    running_on(docker_client, node, "db")[0].exec_run(["sh", "-c", "echo changed >> /data/lines; echo x > /data/b"])
    code, out, err = invoke(consul_server.addr, prefix, "volume", "backup", "db", "--timeout", "60")
    assert code == 0, err  # a newer snapshot: "latest" would not give the chosen one's bytes
    latest = snapshot()
    assert latest != chosen
    changed = digest(old)
    assert changed != at_snapshot

    start_other_agent(fence=True)
    wait_until(lambda: store.get(keys.node(other_node)), 10, what="node B's record")
    store.put(keys.node_status(other_node), dumps(NodeStatus(other_node, "NotReady", 1.0)))
    store.put(keys.node_status(node), dumps(NodeStatus(node, "Ready", 1.0)))
    restore = ("volume", "restore", "db", "--no-wait", "--to-node")
    for args, words in (
        ((*restore, "nosuch"), "no such node"),
        ((*restore, other_node), "NotReady, not Ready"),
        ((*restore, node, "--snapshot", "deadbeef"), "already runs on"),
        (("volume", "restore", "plain", "--to-node", node), "no stateful volume"),
        ((*restore, "../x"), "no such node"),
        ((*restore, other_node, "--volume", "data"), "no --volume"),
    ):
        code, out, err = invoke(consul_server.addr, prefix, *args)
        assert code != 0 and words in err and "Traceback" not in err, (args, err)
    store.put(keys.node_status(other_node), dumps(NodeStatus(other_node, "Ready", 1.0)))
    code, out, err = invoke(consul_server.addr, prefix, *restore, other_node, "--snapshot", "deadbeef")
    assert code == 1 and "not among service/db's snapshots" in err, err
    assert store.get(keys.move_request("db")) is None  # nothing written on a refusal

    code, out, err = invoke(consul_server.addr, prefix, *restore, other_node, "--snapshot", chosen)
    assert code == 0, err
    entry = store.get(keys.move_request("db"))
    move = parse_move(entry.value if entry else None)
    assert move is not None and move.node == other_node and move.snapshot == chosen and move.id in out
    # the controller's part: placement drops the copy on A and places it on B
    store.delete(keys.assignment(node, "db"))
    assign(store, other_node, "db", spec)
    store.put(keys.service_status("db"), dumps(ServiceStatus("db", 1, placement={other_node: 1}, replicas=1)))
    sync_acl(consul_server, prefix)
    outcome = wait_for_move(store, "db", move.id, other_node, 90)
    assert outcome is not None and outcome.ok, outcome
    new = volume_folder(docker_client, f"meshop-{other_node}-db-data")
    assert digest(new) == at_snapshot  # the chosen snapshot's exact bytes, not the latest's
    assert running_on(docker_client, node, "db") == [] and len(running_on(docker_client, other_node, "db")) == 1
    # only the operator writes a move; the controller deletes it: the holder can do neither
    holder = KVStore(role_config("agent", other_node))
    assert holder.get(keys.move_request("db")) is not None
    for attempt in (
        lambda: holder.put(keys.move_request("db"), dumps(MoveRequest("2-x", node, "latest", 2.0))),
        lambda: holder.delete(keys.move_request("db")),
    ):
        with pytest.raises(ConsulError):
            attempt()
    assert digest(old) == changed  # A's volume: kept as it was, never deleted
    kept = wait_until(lambda: store.get(keys.kept_volume(node, f"meshop-{node}-db-data")), 30, what="kept")
    assert kept is not None and '"service": "db"' in kept.text
    events = store.list(keys.events_of(keys.agent_events(other_node))).entries
    assert any("Restored" in e.text and chosen[:8] in e.text for e in events)
