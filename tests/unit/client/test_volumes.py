"""Backup records are read as untrusted, only the placed node's count, and status shows them."""

from __future__ import annotations

import json

from meshop.cli.render import backups_table
from meshop.client.volumes import BackupLine, backup_lines, parse_backups, snapshots_of
from meshop.consul.store import Entry
from meshop.model.records import BackupRecord, SnapshotInfo, VolumeBackup, dumps

NOW = 10_000.0


def entry(key: str, record: BackupRecord | str) -> Entry:
    return Entry(key, (record if isinstance(record, str) else dumps(record)).encode(), 1)


def record(node: str, service: str, **volume: object) -> BackupRecord:
    return BackupRecord(service, node, (VolumeBackup("data", **volume),), NOW)  # type: ignore[arg-type]


def test_records_are_read_as_untrusted() -> None:
    good = record("n1", "db", every=60.0, last_success=NOW - 30)
    found = parse_backups(
        [
            entry("backups/n1/db", good),
            entry("backups/n2/db", record("n1", "db")),  # claims to be another node's
            entry("backups/n3/web", record("n3", "db")),  # another service's
            entry("backups/n4/x/y", record("n4", "x")),
            entry("backups/N5/db", record("N5", "db")),  # not a DNS label
            entry("backups/n6/db", "not json"),
            entry("backups/n7/db", json.dumps({"service": "db", "node": "n7", "volumes": [{"volume": 3}]})),
        ]
    )
    assert found == {("n1", "db"): good}


def test_only_the_placed_nodes_record_counts_and_staleness() -> None:
    records = {
        ("n1", "db"): record("n1", "db", every=60.0, last_success=NOW - 30),
        ("n2", "db"): record("n2", "db", every=60.0, last_success=NOW - 9000),  # the node it left (dead)
    }
    lines = backup_lines(records, {"db": ["n1"]})
    assert [(line.node, line.stale(NOW)) for line in lines] == [("n1", False)]
    assert [line.stale(NOW) for line in backup_lines(records)] == [False, True]
    assert BackupLine("db", "n1", VolumeBackup("data", every=60.0)).stale(NOW)  # none yet


def test_snapshots_newest_first_and_the_table_shows_errors() -> None:
    snaps = (SnapshotInfo("aaaaaaaa", 100.0, "n1"), SnapshotInfo("bbbbbbbb", 200.0, "n2"))
    failed = VolumeBackup("data", every=60.0, snapshots=snaps, error="boom\x1b[2J", reason="failed")
    line = BackupLine("db", "n1", failed)
    assert [s.id for _, s in snapshots_of([line])] == ["bbbbbbbb", "aaaaaaaa"]
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(backups_table([line], NOW))
    text = console.export_text()
    assert "none yet" in text and "failed: boom" in text and "\x1b" not in text
