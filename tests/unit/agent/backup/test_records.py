"""The backup record after an outcome, credentials lines, and requests read as untrusted."""

from __future__ import annotations

import pytest

from meshop.agent.backup.runner import Failed, Outcome, Target, parse_env
from meshop.agent.backup.schedule import Candidate
from meshop.agent.backup.worker import report
from meshop.agent.cluster.backups import parse_request, parse_restore
from meshop.consul.store import Entry
from meshop.model import Backup
from meshop.model.frozen import freeze
from meshop.model.records import BackupRecord, VolumeBackup
from meshop.restic import BackupResult, Snapshot

BACKUP = Backup("rest:https://u:hunter2@b.example/r", "restic", 60.0, freeze({"last": 3}))
TARGET = Target("db", "data", "meshop-n1-db-data", "c" * 64, BACKUP)
CANDIDATE = Candidate("db", "data", 60.0)


def test_success_then_failure_keeps_the_last_success() -> None:
    ok = Outcome(
        True,
        1000.0,
        2.5,
        BackupResult("0db176dd", 10, 100, 2, 2.0),
        (Snapshot("0db176dd" + "0" * 56, "0db176dd", 1000.0, ("meshop",), "n1"),),
    )
    first = report(None, CANDIDATE, TARGET, ok, 0, "")
    assert (first.last_success, first.snapshot, first.total_bytes, first.failures) == (1002.5, "0db176dd", 100, 0)
    assert first.repository == "rest:https://***@b.example/r" and "hunter2" not in str(first)
    assert [s.id for s in first.snapshots] == ["0db176dd"]
    bad = Outcome(False, 1060.0, 0.3, error="restic backup: wrong password", reason="wrong-password")
    second = report(first, CANDIDATE, TARGET, bad, 1, "req-1")
    kept = (second.last_success, second.snapshot, second.reason, second.failures)
    assert kept == (1002.5, "0db176dd", "wrong-password", 1)
    assert second.last_attempt == 1060.0 and second.request == "req-1" and second.snapshots == first.snapshots
    record = BackupRecord("db", "n1", (second,), 1061.0)
    assert BackupRecord.from_dict(record.to_dict()) == record


def test_record_refuses_an_unknown_reason() -> None:
    data = BackupRecord("db", "n1", (VolumeBackup("data"),)).to_dict()
    data["volumes"][0]["reason"] = "pwned"
    with pytest.raises(ValueError, match="reason"):
        BackupRecord.from_dict(data)


def test_env_lines_only_carry_repository_credentials() -> None:
    assert parse_env("# s3\nAWS_ACCESS_KEY_ID=AK\n\nAWS_SECRET_ACCESS_KEY=a=b\n") == {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "a=b",
    }
    for text in ("LD_PRELOAD=/x.so", "RESTIC_PASSWORD_COMMAND=sh", "no equals sign"):
        with pytest.raises(Failed, match="line 1"):
            parse_env(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"id": "r-1", "requestedAt": 5}', "r-1"),
        (b'{"id": "../../x y"}', ""),
        (b'{"id": 3}', ""),
        (b"not json", ""),
        (b"[]", ""),
    ],
)
def test_requests_are_read_as_untrusted(value: bytes, expected: str) -> None:
    assert parse_request(Entry("requests/db/backup", value, 1)) == expected
    assert parse_request(None) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"id": "r-1", "snapshot": "latest"}', ("r-1", "latest", "")),
        (b'{"id": "r-2", "snapshot": "0db176dd", "volume": "data"}', ("r-2", "0db176dd", "data")),
        (b'{"id": "r-3", "snapshot": "--target=/etc"}', None),
        (b'{"id": "r-4", "volume": "../x"}', None),
        (b'{"id": "r 5"}', None),
        (b'{"snapshot": "latest"}', None),
    ],
)
def test_restore_requests_are_read_as_untrusted(value: bytes, expected: tuple[str, str, str] | None) -> None:
    found = parse_restore(Entry("requests/db/restore", value, 1))
    assert (found and (found.id, found.snapshot, found.volume)) == expected
