"""Scheduled backups by a real agent: real Docker volume, real Consul (ACL tokens), real restic.

The service's container takes its env from the same secrets folder as the repository password, so it
runs only once the agent's token may read that folder: the first backup never races the ACL sync."""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import BackupRecord, ServiceStatus, VolumeBackup, dumps
from meshop.restic import RepositorySpec, ensure_repository, restore, snapshots
from tests.integration.agent.helpers import AgentFactory, Engine, assign
from tests.integration.agent.stateful import digest, document, volume_backup
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

PASSWORD = "repo-" + secrets.token_hex(8)
WRITER = {
    "image": "meshop-test/busybox:1",
    "command": ["/bin/sh"],
    "args": [
        "-c",
        "[ -f /data/a.txt ] || echo first > /data/a.txt; "
        "[ -f /data/blob ] || head -c 300000 /dev/urandom > /data/blob; exec sleep 3600",
    ],
}


def stateful(prefix: str, repo: Path, **backup: Any) -> dict[str, Any]:
    return {
        **WRITER,
        "env": [{"name": "UNUSED", "valueFrom": {"consulKey": f"{prefix}/secrets/app/restic"}}],
        "volumes": [
            {
                "name": "data",
                "mountPath": "/data",
                "stateful": {
                    "backup": {"repository": str(repo), "passwordSecret": "restic", "every": "1h", "keep": {"last": 2}}
                    | backup
                },
            }
        ],
    }


def volume_record(store: KVStore, node: str) -> VolumeBackup | None:
    return volume_backup(store, node, "app")


def started(start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, spec: dict[str, Any]) -> Any:
    """An agent running ``app`` with ``spec`` (its password in place): its container."""
    store.client.kv.put(f"{store.prefix}/secrets/app/restic", PASSWORD)
    agent = start_agent(fence=True)
    assign(store, node, "app", spec)
    wait_until(lambda: engine.running("app"), 10, what="the container")
    return agent


def test_backup_runs_reports_and_a_request_runs_another(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    prefix: str,
    tmp_path: Path,
    consul_server: ConsulServer,
) -> None:
    spec = stateful(prefix, tmp_path / "repo", prepare={"exec": ["sh", "-c", "sync"]})
    spec["placement"] = {"node": node}
    agent = started(start_agent, store, engine, node, spec)
    first = wait_until(lambda: (v := volume_record(store, node)) and v.snapshot and v, 60, what="a first snapshot")
    assert isinstance(first, VolumeBackup)
    assert first.total_bytes == 300_006 and first.error == "" and first.every == 3600.0
    assert first.repository == str(tmp_path / "repo") and len(first.snapshots) == 1
    repo = RepositorySpec(str(tmp_path / "repo"), PASSWORD)
    listed = snapshots(repo, ("meshop", "service=app", "volume=data"))
    assert [s.short_id for s in listed] == [first.snapshot] and listed[0].hostname == node
    restored = restore(repo, "latest", tmp_path / "restored", ("service=app",))
    volume = engine.client.volumes.get(f"meshop-{node}-app-data").attrs["Mountpoint"]
    assert restored.files == 2 and digest(tmp_path / "restored") == digest(Path(volume))
    assert PASSWORD not in dumps(BackupRecord("app", node, (first,)))

    container_id = engine.running("app")[0].id
    # the commands: a document and a status as apply and the controller would write them
    store.put(keys.desired_service("app"), document("app", spec))
    store.put(keys.service_status("app"), dumps(ServiceStatus("app", 1, placement={node: 1}, replicas=1)))
    code, out, err = invoke(consul_server.addr, prefix, "volume", "backup", "app", "--timeout", "60")
    assert code == 0, err
    second = volume_record(store, node)
    assert second is not None and second.request and second.request in out and "data on " + node in out
    assert second.snapshot != first.snapshot and second.last_success > first.last_success
    code, out, err = invoke(consul_server.addr, prefix, "volume", "snapshots", "app")
    assert code == 0 and out.index(second.snapshot) < out.index(first.snapshot), err
    code, out, err = invoke(consul_server.addr, prefix, "volume", "ls", "-o", "json")
    assert code == 0 and json.loads(out)[0]["backup"]["snapshot"] == second.snapshot, err
    code, out, _ = invoke(consul_server.addr, prefix, "status")
    assert "BACKUPS" in out and second.snapshot in out
    code, out, _ = invoke(consul_server.addr, prefix, "describe", "service", "app")
    assert "Backups:" in out and second.snapshot in out
    for args, words in (
        (("volume", "backup", "nosuch"), "service nosuch not found"),
        (("volume", "snapshots", "nosuch"), "no backups reported for service nosuch"),
        (("volume", "backup", "../x"), "not a service name"),
    ):
        code, out, err = invoke(consul_server.addr, prefix, *args)
        assert code == 1 and words in err and "Traceback" not in err, (args, err)
    assert second.bytes_added < 10_000  # nothing changed: deduplicated
    assert [c.id for c in engine.running("app")] == [container_id]  # prepare exec: the service untouched
    with urllib.request.urlopen(agent.status_url + "/metrics", timeout=5) as response:
        body = response.read()
    assert b'meshop_volume_backup_age_seconds{service="app",volume="data"}' in body
    assert b'meshop_volume_backup_last_size_bytes{service="app",volume="data"} 300006.0' in body


def test_failures_are_reported_and_the_service_keeps_running(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, prefix: str, tmp_path: Path
) -> None:
    ensure_repository(RepositorySpec(str(tmp_path / "repo"), "another-password"))
    started(start_agent, store, engine, node, stateful(prefix, tmp_path / "repo", prepare={"stop": True}))
    container_id = engine.running("app")[0].id
    failed = wait_until(lambda: (v := volume_record(store, node)) and v.failures and v, 60, what="a failure")
    assert isinstance(failed, VolumeBackup)
    assert failed.reason == "wrong-password" and failed.snapshot == "" and PASSWORD not in failed.error
    # prepare: stop stopped it for the attempt and started it again, though the backup failed
    wait_until(lambda: [c.id for c in engine.running("app")] == [container_id], 10, what="running again")

    # a prepare command that fails: no backup, the service untouched
    assign(store, node, "app", stateful(prefix, tmp_path / "repo2", prepare={"exec": ["sh", "-c", "exit 7"]}))
    store.client.kv.put(f"{prefix}/secrets/app/restic", PASSWORD)
    wait_until(
        lambda: (v := volume_record(store, node)) and v.reason == "prepare-failed" and "exited 7" in v.error,
        60,
        what="prepare-failed",
    )
    assert [c.id for c in engine.running("app")] == [container_id]
    assert not any((tmp_path / "repo2" / "snapshots").iterdir())  # created, but nothing backed up


def test_prepare_stop_stops_backs_up_and_starts_the_same_container(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, prefix: str, tmp_path: Path
) -> None:
    started(start_agent, store, engine, node, stateful(prefix, tmp_path / "repo", prepare={"stop": True}))
    before = engine.running("app")[0]
    done = wait_until(lambda: (v := volume_record(store, node)) and v.snapshot and v, 60, what="a snapshot")
    assert isinstance(done, VolumeBackup) and done.total_bytes == 300_006
    after = wait_until(lambda: engine.running("app"), 10, what="running again")
    assert isinstance(after, list) and [c.id for c in after] == [before.id]  # the same container, not a new one
    after[0].reload()
    assert after[0].attrs["State"]["StartedAt"] != before.attrs["State"]["StartedAt"]  # it was stopped


def test_restore_stops_restores_exact_bytes_keeps_the_old_and_starts_the_same_container(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    prefix: str,
    tmp_path: Path,
    consul_server: ConsulServer,
) -> None:
    spec = stateful(prefix, tmp_path / "repo")
    daemon = started(start_agent, store, engine, node, spec).daemon
    # one runner: what the in-place restore (the worker) or a restore before start holds stopped, the
    # reconciler sees (agent/daemon.py)
    restorer = daemon.reconciler.cluster.restorer
    assert daemon.backups is not None and restorer is not None
    assert daemon.backups.runner is restorer.runner is daemon.backup_runner
    store.put(keys.desired_service("app"), document("app", spec))
    first = wait_until(lambda: (v := volume_record(store, node)) and v.snapshot and v, 60, what="a first snapshot")
    assert isinstance(first, VolumeBackup)
    volume = Path(engine.client.volumes.get(f"meshop-{node}-app-data").attrs["Mountpoint"])
    at_snapshot = digest(volume)
    container = engine.running("app")[0]
    container.exec_run(["sh", "-c", "echo changed > /data/a.txt; echo new > /data/b.txt"])
    assert digest(volume) != at_snapshot

    # a snapshot that does not exist: the volume and the service untouched
    restore = ("volume", "restore", "app", "--timeout", "60", "--snapshot")
    code, out, err = invoke(consul_server.addr, prefix, *restore, "deadbeef")
    assert code == 1 and "no-snapshot" in err, err
    changed = digest(volume)
    assert changed != at_snapshot and [c.id for c in engine.running("app")] == [container.id]

    code, out, err = invoke(consul_server.addr, prefix, *restore, first.snapshot)
    assert code == 0, err
    assert f"restored snapshot {first.snapshot}" in out
    assert digest(volume) == at_snapshot  # the snapshot's exact bytes, b.txt gone
    aside = next(volume.parent.glob("meshop-before-restore-*"))
    assert digest(aside) == changed  # what it replaced, kept
    wait_until(lambda: [c.id for c in engine.running("app")] == [container.id], 10, what="the same container again")
    assert store.get(keys.restore_request("app")) is None  # consumed: never carried out twice
    for args, words in (
        (("volume", "restore", "app", "--snapshot", "../x"), "--snapshot"),
        (("volume", "restore", "app", "--volume", "other"), "--volume"),
    ):
        code, out, err = invoke(consul_server.addr, prefix, *args)
        assert code == 1 and words in err and "Traceback" not in err, (args, err)
