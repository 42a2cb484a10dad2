"""What restic printed, read as hostile: pure parsers with bounds, and the failure classifier.

A repository is written by whoever holds its password, possibly another (compromised) node, so a
snapshot's tags and host name are checked and cut, ids must be hex of the right length, and a list
longer than ``MAX_SNAPSHOTS`` is refused rather than held. restic 0.14 (Debian 12) reports failures as
``Fatal: ...`` text with exit code 1 and no distinct codes, so ``classify`` reads its stderr; the
message kept for people is its last lines, cut, with the repository's credentials never in it (restic
does not print the password; a URL's ``user:pass@`` is masked by the caller).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from meshop.errors import ResticError

MAX_SNAPSHOTS = 10_000
MAX_TAGS = 32
MAX_TEXT = 253
MAX_MESSAGE = 600
_ID = re.compile(r"[0-9a-f]{64}")
_SHORT_ID = re.compile(r"[0-9a-f]{8}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,253}")

Kind = Literal["unreachable", "wrong-password", "disk-full", "no-snapshot", "locked", "failed", "missing"]

# (kind, lower-case fragment of restic's or ssh's stderr); the first match wins
_PATTERNS: tuple[tuple[Kind, str], ...] = (
    ("wrong-password", "wrong password or no key found"),
    ("disk-full", "no space left on device"),
    ("disk-full", "disk quota exceeded"),
    ("locked", "repository is already locked"),
    ("locked", "unable to create lock"),
    ("no-snapshot", "no matching id found"),
    ("no-snapshot", "no snapshot found"),
    ("no-snapshot", "snapshot not found"),
    ("missing", "is there a repository at the following location"),
    ("unreachable", "host key verification failed"),
    ("unreachable", "connection refused"),
    ("unreachable", "connection timed out"),
    ("unreachable", "no route to host"),
    ("unreachable", "could not resolve hostname"),
    ("unreachable", "no such host"),
    ("unreachable", "permission denied (publickey"),
    ("unreachable", "unable to start the sftp session"),
    ("unreachable", "connection closed"),
    ("unreachable", "dial tcp"),
    ("unreachable", "i/o timeout"),
)


@dataclass(frozen=True)
class Snapshot:
    id: str  # 64 hex digits
    short_id: str  # the first 8
    time: float  # Unix seconds (restic's wall-clock record of when the backup ran)
    tags: tuple[str, ...]
    hostname: str


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str  # as restic reports it (0.14: the short id)
    bytes_added: int  # new data written to the repository (after dedup, before compression)
    total_bytes: int  # bytes of the files backed up
    files: int
    duration_s: float


@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    snapshot_time: float
    files: int
    total_bytes: int
    duration_s: float


def classify(stderr: str) -> Kind:
    """The kind of failure restic's (or ssh's) stderr describes; ``failed`` when nothing matches."""
    low = stderr.lower()
    for kind, fragment in _PATTERNS:
        if fragment in low:
            return kind
    return "failed"


def tail_message(stderr: str) -> str:
    """restic's own words for people: the last non-empty lines, printable only, cut to ``MAX_MESSAGE``."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    text = "; ".join(lines[-3:])
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[-MAX_MESSAGE:] or "restic failed without a message"


def _int(obj: dict[str, object], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ResticError("failed", f"restic's backup summary: {key} is not a count")
    return value


def parse_backup(stdout: str) -> BackupResult:
    """The ``summary`` line of ``restic backup --json`` (status lines before it are skipped)."""
    for line in reversed(stdout.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("message_type") != "summary":
            continue
        snapshot_id = obj.get("snapshot_id")
        if not isinstance(snapshot_id, str) or not (_SHORT_ID.fullmatch(snapshot_id) or _ID.fullmatch(snapshot_id)):
            raise ResticError("failed", "restic's backup summary has no valid snapshot id")
        duration = obj.get("total_duration", 0.0)
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
            raise ResticError("failed", "restic's backup summary: total_duration is not a number")
        files = _int(obj, "files_new") + _int(obj, "files_changed") + _int(obj, "files_unmodified")
        return BackupResult(
            snapshot_id, _int(obj, "data_added"), _int(obj, "total_bytes_processed"), files, max(0.0, float(duration))
        )
    raise ResticError("failed", "restic backup printed no summary")


def parse_time(text: object) -> float:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise ValueError("time is not an RFC 3339 timestamp")
    return datetime.fromisoformat(text).timestamp()


def _snapshot(obj: object) -> Snapshot:
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    sid, short = obj.get("id"), obj.get("short_id")
    if not isinstance(sid, str) or not _ID.fullmatch(sid):
        raise ValueError("id is not 64 hex digits")
    if not isinstance(short, str) or not _SHORT_ID.fullmatch(short) or not sid.startswith(short):
        raise ValueError("short_id is not the id's first 8 hex digits")
    hostname = obj.get("hostname", "")
    if not isinstance(hostname, str):
        raise ValueError("hostname is not a string")
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags is not a list of strings")
    kept = tuple(t for t in tags[:MAX_TAGS] if _PRINTABLE.fullmatch(t))
    shown_host = hostname[:MAX_TEXT] if _PRINTABLE.fullmatch(hostname[:MAX_TEXT] or "-") else "?"
    return Snapshot(sid, short, parse_time(obj.get("time")), kept, shown_host)


def parse_snapshots(stdout: str) -> list[Snapshot]:
    """``restic snapshots --json``: a JSON array of snapshots, oldest first as restic lists them."""
    try:
        data = json.loads(stdout or "[]")
    except ValueError:
        raise ResticError("failed", "restic snapshots printed something that is not JSON") from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ResticError("failed", "restic snapshots printed something that is not a list")
    if len(data) > MAX_SNAPSHOTS:
        raise ResticError("failed", f"the repository lists more than {MAX_SNAPSHOTS} snapshots for these tags")
    result = []
    for index, obj in enumerate(data):
        try:
            result.append(_snapshot(obj))
        except ValueError as exc:
            raise ResticError("failed", f"restic snapshots: entry {index}: {exc}") from None
    return sorted(result, key=lambda s: (s.time, s.id))
