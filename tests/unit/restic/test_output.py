"""restic's output is parsed as hostile and its failures are classified (restic 0.14's own words)."""

from __future__ import annotations

import json

import pytest

from meshop.errors import ResticError
from meshop.restic.output import MAX_SNAPSHOTS, classify, parse_backup, parse_snapshots, tail_message

SID = "e8d0d6b7972aedf011da2079e21ed984e1b72e95948ff52c226299f91c9fc452"


def snap(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "time": "2026-12-07T00:47:02.686637359Z",
        "hostname": "n1",
        "tags": ["meshop", "service=web"],
        "id": SID,
        "short_id": SID[:8],
    }
    return base | over


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Fatal: wrong password or no key found", "wrong-password"),
        ("Fatal: unable to save snapshot: write /r/data/x-tmp: no space left on device", "disk-full"),
        ("Fatal: unable to create lock in backend: repository is already locked exclusively by PID 1", "locked"),
        ('invalid id "deadbeef": no matching ID found for prefix "deadbeef"', "no-snapshot"),
        ("latest snapshot for criteria not found: no snapshot found Paths:[] Hosts:[]", "no-snapshot"),
        ("Fatal: unable to open config file\nIs there a repository at the following location?", "missing"),
        ("Host key verification failed.\nFatal: unable to open repository", "unreachable"),
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused", "unreachable"),
        ("Fatal: something new", "failed"),
        ("", "failed"),
    ],
)
def test_classify(stderr: str, kind: str) -> None:
    assert classify(stderr) == kind


def test_tail_message_is_bounded_and_printable() -> None:
    text = tail_message("a\n\x1b[31mb\n" + "c" * 5000)
    assert len(text) <= 600 and "\x1b" not in text
    assert tail_message("") == "restic failed without a message"


def test_backup_summary_after_status_lines() -> None:
    out = "\n".join(
        [
            json.dumps({"message_type": "status", "percent_done": 0.5}),
            "not json",
            json.dumps(
                {
                    "message_type": "summary",
                    "files_new": 2,
                    "files_changed": 1,
                    "files_unmodified": 4,
                    "data_added": 1048,
                    "total_bytes_processed": 100003,
                    "total_duration": 0.21,
                    "snapshot_id": "0db176dd",
                }
            ),
        ]
    )
    result = parse_backup(out)
    assert (result.snapshot_id, result.files, result.bytes_added, result.total_bytes) == ("0db176dd", 7, 1048, 100003)


@pytest.mark.parametrize(
    "summary",
    [
        {"message_type": "summary", "snapshot_id": "../../etc"},
        {"message_type": "summary", "snapshot_id": "0db176dd", "data_added": -1},
        {"message_type": "summary", "snapshot_id": "0db176dd", "data_added": True},
        {"message_type": "summary", "snapshot_id": "0db176dd", "total_duration": "1"},
    ],
)
def test_hostile_backup_summaries_are_refused(summary: dict[str, object]) -> None:
    with pytest.raises(ResticError):
        parse_backup(json.dumps(summary))


def test_no_summary_is_an_error() -> None:
    with pytest.raises(ResticError, match="no summary"):
        parse_backup('{"message_type":"status"}')


def test_snapshots_parse_sorted_and_cut() -> None:
    older = snap(time="2026-12-06T00:00:00Z", id="a" * 64, short_id="a" * 8, tags=None, hostname="x" * 400)
    listed = parse_snapshots(json.dumps([snap(tags=["ok", "bad tag", "\x1b"]), older]))
    assert [s.short_id for s in listed] == ["aaaaaaaa", SID[:8]]
    assert listed[1].tags == ("ok",) and listed[0].tags == () and len(listed[0].hostname) == 253
    assert parse_snapshots("null") == [] and parse_snapshots("") == []


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (snap(id="../x"), "id is not"),
        (snap(short_id="ffffffff"), "short_id"),
        (snap(time="yesterday"), "RFC 3339"),
        (snap(time=1), "RFC 3339"),
        (snap(tags="meshop"), "tags"),
        (snap(hostname=3), "hostname"),
        ("x", "not an object"),
    ],
)
def test_hostile_snapshots_are_refused(entry: object, words: str) -> None:
    with pytest.raises(ResticError, match=words):
        parse_snapshots(json.dumps([entry]))


def test_too_many_snapshots_are_refused_not_held() -> None:
    with pytest.raises(ResticError, match="more than"):
        parse_snapshots(json.dumps([snap()] * (MAX_SNAPSHOTS + 1)))
    with pytest.raises(ResticError, match="not JSON"):
        parse_snapshots("[")
