"""Restore before start (meshop/agent/stateful/restore.py), with real restic on a local repository, a
folder for the volume and fakes for the lock records and the journal: what fences the service, what
settles it, what is never done."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from meshop.agent.backup.runner import BackupRunner
from meshop.agent.planning import labels as L
from meshop.agent.stateful.restore import Restorer
from meshop.model import parse_service
from meshop.model.records import MoveRequest
from meshop.restic import RepositorySpec, backup, ensure_repository
from tests.unit.model.helpers import service

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is installed by make setup")

PASSWORD = "unit-test-password"


class Locks:
    def __init__(self, pending: list[str]) -> None:
        self.waiting = list(pending)
        self.settled: list[str] = []

    def pending(self, service: str) -> list[str]:
        return list(self.waiting)

    def previous(self, service: str, volume: str) -> None:
        return None

    def settle(self, service: str, volume: str) -> bool:
        self.waiting.remove(volume)
        self.settled.append(volume)
        return True


class Folders:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure_volume(self, name: str, labels: dict[str, str]) -> str:
        assert labels[L.STATEFUL] == "true"
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)


class Secrets:
    def get(self, service: str, key: str) -> str | None:
        return PASSWORD if key.endswith("/restic") else None


class Journal:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def add(self, kind: str, obj: str, message: str) -> None:
        self.events.append((kind, obj, message))


def spec(repo: Path, failover: str = "restore-latest", with_backup: bool = True):  # type: ignore[no-untyped-def]
    marker = {"backup": {"repository": str(repo), "passwordSecret": "restic", "every": "1m"}} if with_backup else {}
    doc = service({"volumes": [{"name": "data", "mountPath": "/data", "stateful": marker}], "failover": failover})
    if not with_backup:
        doc["spec"].pop("failover")
    return parse_service(doc).spec


def snapshots(tmp_path: Path, *versions: bytes) -> list[str]:
    """The repository ``spec`` names, with one snapshot of web's volume (a file ``db``) per version, as
    node n1 took them: their ids, oldest first."""
    repo = RepositorySpec(str(tmp_path / "repo"), PASSWORD)
    ensure_repository(repo)
    source = tmp_path / "old"
    source.mkdir()
    ids = []
    for content in versions:
        (source / "db").write_bytes(content)
        ids.append(backup(repo, source, ("meshop", "service=web", "volume=data"), "n1").snapshot_id)
    return ids


def restorer(tmp_path: Path, locks: Locks, journal: Journal, clock: list[float]) -> Restorer:
    runner = BackupRunner("n2", "meshop", Folders(tmp_path / "volumes"), Secrets(), lambda: 2e9, lambda: clock[0])  # type: ignore[arg-type]
    return Restorer(
        "n2", locks, Folders(tmp_path / "volumes"), runner, journal, wall=lambda: 2e9, mono=lambda: clock[0]
    )


def finish(r: Restorer, service_name: str) -> None:
    job = r._jobs[service_name]
    assert job.thread is not None
    job.thread.join(timeout=60)


def test_the_latest_snapshot_is_restored_before_the_first_start(tmp_path: Path) -> None:
    snapshots(tmp_path, b"rows 1..100\n")
    locks, journal, clock = Locks(["data"]), Journal(), [0.0]
    r = restorer(tmp_path, locks, journal, clock)
    s = spec(tmp_path / "repo")
    assert r.gate("web", s).reason == "Restoring"  # type: ignore[union-attr]
    finish(r, "web")
    assert (tmp_path / "volumes" / "meshop-n2-web-data" / "db").read_bytes() == b"rows 1..100\n"
    assert locks.settled == ["data"]
    assert r.gate("web", s) is None
    kind, _, message = journal.events[0]
    assert kind == "Restored" and "data-loss window" in message
    assert r.notes()["web"].message == message  # the observed record's, so `meshop status` shows it


def test_no_snapshot_fences_and_never_starts_on_an_empty_volume(tmp_path: Path) -> None:
    ensure_repository(RepositorySpec(str(tmp_path / "repo"), PASSWORD))
    locks, journal, clock = Locks(["data"]), Journal(), [0.0]
    r = restorer(tmp_path, locks, journal, clock)
    s = spec(tmp_path / "repo")
    r.gate("web", s)
    finish(r, "web")
    note = r.gate("web", s)
    assert note is not None and note.reason == "RestoreFailed" and "no-snapshot" in note.message
    assert locks.settled == [] and journal.events[0][0] == "RestoreFailed"
    assert r.gate("web", s) == note  # backing off: no new attempt yet
    clock[0] += 10.0
    assert r.gate("web", s).reason == "Restoring"  # type: ignore[union-attr]
    finish(r, "web")


def test_an_old_copy_on_this_node_is_kept_not_overwritten(tmp_path: Path) -> None:
    stale = tmp_path / "volumes" / "meshop-n2-web-data"
    stale.mkdir(parents=True)
    (stale / "db").write_bytes(b"an older copy\n")
    locks, journal, clock = Locks(["data"]), Journal(), [0.0]
    r = restorer(tmp_path, locks, journal, clock)
    r.gate("web", spec(tmp_path / "repo"))
    finish(r, "web")
    note = r.gate("web", spec(tmp_path / "repo"))
    assert note is not None and note.reason == "StaleVolume" and "docker volume rm meshop-n2-web-data" in note.message
    assert (stale / "db").read_bytes() == b"an older copy\n" and locks.settled == []


def test_without_a_backup_a_moved_service_waits_unless_pinned_here(tmp_path: Path) -> None:
    """Its data is on the previous node: starting empty elsewhere would look like data loss. Pinning the
    service to this node is the user's word that an empty start is wanted."""
    locks, journal, clock = Locks(["data"]), Journal(), [0.0]
    r = restorer(tmp_path, locks, journal, clock)
    s = spec(tmp_path / "repo", with_backup=False)
    r.gate("web", s)
    finish(r, "web")
    note = r.gate("web", s)
    assert note is not None and note.reason == "VolumeOnOtherNode" and "placement.node" in note.message
    assert locks.settled == []
    pinned = replace(s, placement=replace(s.placement, node="n2"))
    clock[0] += 10.0
    r.gate("web", pinned)
    finish(r, "web")
    assert r.gate("web", pinned) is None and locks.settled == ["data"]
    assert journal.events[-1][0] == "StartedEmpty"


class Moves:
    """``requests/<service>/move`` as ``MoveStore`` gives it."""

    def __init__(self, node: str, snapshot: str) -> None:
        self.request = MoveRequest("1-a", node, snapshot, 1.0)

    def move(self, service: str) -> MoveRequest | None:
        return self.request


def test_a_move_by_command_restores_its_chosen_snapshot_whatever_failover_says(tmp_path: Path) -> None:
    chosen, _ = snapshots(tmp_path, b"the chosen one\n", b"the latest\n")
    s = spec(tmp_path / "repo", failover="none")
    # a move to another node is not this one's to carry out: failover none, so it waits for its data
    locks, journal, clock = Locks(["data"]), Journal(), [0.0]
    r = restorer(tmp_path, locks, journal, clock)
    r.moves = Moves("n3", chosen)
    r.gate("web", s)
    finish(r, "web")
    assert r.gate("web", s).reason == "VolumeOnOtherNode"  # type: ignore[union-attr]
    # a snapshot id that is not there: fenced, the request kept, nothing settled
    clock[0] += 10.0
    r.moves = Moves("n2", "deadbeef")
    r.gate("web", s)
    finish(r, "web")
    note = r.gate("web", s)
    assert note is not None and note.reason == "RestoreFailed" and "snapshot deadbeef" in note.message
    assert locks.settled == []
    clock[0] += 30.0
    r.moves = Moves("n2", chosen[:8])
    r.gate("web", s)
    finish(r, "web")
    assert (tmp_path / "volumes" / "meshop-n2-web-data" / "db").read_bytes() == b"the chosen one\n"
    assert locks.settled == ["data"] and r.gate("web", s) is None
