"""``meshop volume restore SERVICE --to-node N --snapshot ID --wait`` end to end (issue 25): real Consul
with ACL tokens, a real ``meshop controller run`` process, two real agents on the shared Docker engine and
real restic. Nothing plays the controller's part: the CLI writes the move request, the controller moves
the service stop-first, node B's agent restores the chosen snapshot (not the latest) into a fresh volume
before the first start, and the CLI returns once B runs it. A sampler lists both nodes' containers every
100 ms meanwhile: never two running copies. A's volume is kept as it was and listed by ``volume ls``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeStatus, loads_json
from meshop.restic import RepositorySpec, restore
from tests.integration.agent.helpers import AgentFactory
from tests.integration.agent.stateful import (
    Sampler,
    backed_up,
    digest,
    document,
    put_password,
    running_on,
    snapshot_of,
    volume_folder,
)
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import wait_until

SEED = "[ -e /data/seed ] || echo seed > /data/seed; exec sleep 3600"  # restic refuses an empty snapshot
WRITE = "seq 1 5000 > /data/lines; head -c 200000 /dev/urandom > /data/blob; sync"
CHANGE = "echo changed >> /data/lines; echo after > /data/later; sync"


def node_state(store: KVStore, node: str) -> str:
    entry = store.get(keys.node_status(node))
    return NodeStatus.from_dict(loads_json(entry.value)).state if entry else ""


def test_volume_restore_to_node_with_a_real_controller_and_two_agents(
    consul_server: ConsulServer,
    consul_config: ConsulConfig,
    docker_client: Any,
    start_agent: AgentFactory,
    start_other_agent: AgentFactory,
    node: str,
    other_node: str,
    tmp_path: Path,
    prefix: str,
) -> None:
    store = KVStore(consul_config)
    password = put_password(store, prefix, "db")
    args = ["controller", "run", "--id", f"{prefix}-c1", "--metrics-addr", "127.0.0.1:0", "--grace-period", "5"]
    controller = meshop_process(consul_server.addr, prefix, args, tmp_path / "controller.log").start()
    try:
        start_agent(fence=True)  # node A alone: the controller places the service there
        spec = backed_up(tmp_path / "repo", args=SEED)  # failover: none (the default): only the command moves it
        (tmp_path / "db.json").write_text(document("db", spec))
        code, out, err = invoke(consul_server.addr, prefix, "apply", "-f", str(tmp_path / "db.json"))
        assert code == 0, err
        copy = wait_until(lambda: running_on(docker_client, node, "db"), 40, what="the copy on node A")
        assert isinstance(copy, list)
        wait_until(lambda: snapshot_of(store, node, "db"), 40, what="a first backup on node A")
        assert copy[0].exec_run(["sh", "-c", WRITE]).exit_code == 0
        code, out, err = invoke(consul_server.addr, prefix, "volume", "backup", "db", "--timeout", "40")
        assert code == 0, err
        chosen = snapshot_of(store, node, "db")
        old = volume_folder(docker_client, f"meshop-{node}-db-data")
        at_snapshot = digest(old)
        assert set(at_snapshot) == {"seed", "lines", "blob"}
        assert copy[0].exec_run(["sh", "-c", CHANGE]).exit_code == 0
        code, out, err = invoke(consul_server.addr, prefix, "volume", "backup", "db", "--timeout", "40")
        assert code == 0, err
        assert snapshot_of(store, node, "db") != chosen  # "latest" would not give the chosen one's bytes
        changed = digest(old)
        assert changed != at_snapshot

        start_other_agent(fence=True)
        wait_until(lambda: node_state(store, other_node) == "Ready", 30, what="node B judged Ready")
        with Sampler(docker_client, "db", [node, other_node], every=0.1) as sampler:
            restore_args = ("volume", "restore", "db", "--to-node", other_node, "--snapshot", chosen)
            code, out, err = invoke(consul_server.addr, prefix, *restore_args, "--wait", "--timeout", "60")
            assert code == 0, f"{err}\n{controller.log_path.read_text()[-3000:]}"
            assert "kept" in out
            wait_until(lambda: other_node in sampler.seen_on, 10, what="the sampler to see B's copy")
        assert sampler.samples > 10
        assert sampler.most == 1, "two copies ran at once"
        assert sampler.seen_on == {node, other_node}

        new = volume_folder(docker_client, f"meshop-{other_node}-db-data")
        assert digest(new) == at_snapshot  # the chosen snapshot's exact bytes, not the latest's
        tags = ("meshop", "service=db", "volume=data")
        restore(RepositorySpec(str(tmp_path / "repo"), password), chosen, tmp_path / "by-restic", tags)
        assert digest(tmp_path / "by-restic") == at_snapshot  # and they are what restic holds for that id
        assert running_on(docker_client, node, "db") == [] and len(running_on(docker_client, other_node, "db")) == 1
        assert digest(old) == changed  # A's volume: kept as it was, never deleted
        kept = {"service": "", "volume": f"meshop-{node}-db-data", "node": node, "kept": True}
        listed = wait_until(
            lambda: kept in json.loads(invoke(consul_server.addr, prefix, "volume", "ls", "-o", "json")[1]),
            30,
            what="A's volume listed as kept by `meshop volume ls`",
        )
        assert listed
        assert store.get(keys.move_request("db")) is None  # consumed by the controller: a one-shot move
    finally:
        controller.stop()
