"""The restic operations meshop uses: init, backup, list, restore, forget+prune.

Tags select a volume's snapshots (``meshop``, ``service=web``, ``volume=data``); every tag given must be
on a snapshot (restic's ``--tag a,b``). A backup is taken from inside the folder (``backup .``), so a
restore puts the volume's files at the top of the target whatever the source's path was on its node.
Retention groups by tags only, not by host or path: a volume restored onto another node keeps one
history. A restore goes only into an empty (or new) folder, so its bytes are exactly the snapshot's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshop.errors import ResticError
from meshop.restic.output import BackupResult, RestoreResult, Snapshot, parse_backup, parse_snapshots
from meshop.restic.process import RepositoryMissing, run
from meshop.restic.repository import RepositorySpec

KEEP_POLICIES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
LONG_TIMEOUT_S = 6 * 3600.0
_TAG = re.compile(r"[A-Za-z0-9_.=:/+@-]{1,128}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})")
_SNAPSHOT_REF = re.compile(r"latest|[0-9a-f]{8,64}")
EMPTY_VOLUME = "the volume is empty: nothing to back up yet (the first backup follows the service's first write)"


def _tag_args(tags: Sequence[str]) -> list[str]:
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ResticError("failed", f"tag {tag!r}: letters, digits and _.=:/+@- only, at most 128")
    return ["--tag", ",".join(tags)] if tags else []


def ensure_repository(repo: RepositorySpec) -> bool:
    """Initialise the repository when there is none; True when this call created it. Idempotent: an
    existing repository is only opened (which also proves the password); two nodes racing to create
    it end with one repository (restic refuses to overwrite a config)."""
    try:
        run(repo, ["cat", "config"])
        return False
    except RepositoryMissing:
        pass
    try:
        run(repo, ["init"])
    except ResticError as exc:
        if "config file already exists" not in str(exc):
            raise
        run(repo, ["cat", "config"])  # someone else created it first: it must open with our password
        return False
    return True


def backup(
    repo: RepositorySpec, source_dir: Path, tags: Sequence[str], host: str, *, timeout_s: float = LONG_TIMEOUT_S
) -> BackupResult:
    """Back up the contents of ``source_dir`` as one snapshot with ``tags`` and ``host``."""
    if not _HOST.fullmatch(host):
        raise ResticError("failed", f"host {host!r}: not a host name")
    if not source_dir.is_dir():
        raise ResticError("failed", f"{source_dir} is not a folder")
    with os.scandir(source_dir) as entries:
        if next(entries, None) is None:  # restic 0.14 fails on it with "snapshot is empty"
            raise ResticError("failed", EMPTY_VOLUME)
    out = run(repo, ["backup", "--json", "--host", host, *_tag_args(tags), "."], cwd=source_dir, timeout_s=timeout_s)
    return parse_backup(out.stdout)


def snapshots(repo: RepositorySpec, tags: Sequence[str]) -> list[Snapshot]:
    """Every snapshot carrying all ``tags``, oldest first."""
    return parse_snapshots(run(repo, ["snapshots", "--json", *_tag_args(tags)]).stdout)


def _folder_size(root: Path) -> tuple[int, int]:
    files = total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                files += 1
                total += path.stat().st_size
    return files, total


def restore(
    repo: RepositorySpec,
    snapshot_id: str,
    target_dir: Path,
    tags: Sequence[str],
    *,
    timeout_s: float = LONG_TIMEOUT_S,
) -> RestoreResult:
    """Restore ``snapshot_id`` (or ``latest`` among ``tags``) into the empty folder ``target_dir``.

    The snapshot must carry ``tags`` (a snapshot of another service is ``no-snapshot``), so a
    command cannot restore one volume's data into another's by id."""
    if not _SNAPSHOT_REF.fullmatch(snapshot_id):
        raise ResticError("no-snapshot", f"snapshot {snapshot_id!r}: not 'latest' or a hex snapshot id")
    if target_dir.exists() and any(target_dir.iterdir()):
        raise ResticError("failed", f"restore target {target_dir} is not empty")
    listed = snapshots(repo, tags)
    latest = snapshot_id == "latest"
    chosen = listed[-1:] if latest else [s for s in listed if s.id.startswith(snapshot_id)]
    if len(chosen) != 1:
        what = "no snapshot" if not chosen else "more than one snapshot"
        raise ResticError("no-snapshot", f"{what} {snapshot_id} with tags {','.join(tags)} in {repo.shown}")
    snap = chosen[0]
    target_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run(repo, ["restore", snap.id, "--target", str(target_dir)], timeout_s=timeout_s)
    files, total = _folder_size(target_dir)
    return RestoreResult(snap.id, snap.time, files, total, time.monotonic() - started)


def keep_args(keep: Mapping[str, int]) -> list[str]:
    """``{last: 3, daily: 7}`` as restic's ``--keep-last 3 --keep-daily 7``; refuses an empty policy
    (it would forget every snapshot) and anything but small positive counts."""
    args: list[str] = []
    for name, count in keep.items():
        if name not in KEEP_POLICIES:
            raise ResticError("failed", f"keep.{name}: not one of {', '.join(KEEP_POLICIES)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise ResticError("failed", f"keep.{name}: must be a whole number from 1")
        args += [f"--keep-{name}", str(count)]
    if not args:
        raise ResticError("failed", "keep: at least one of last, hourly, daily, ... (an empty policy forgets all)")
    return args


def forget(
    repo: RepositorySpec, keep: Mapping[str, int], tags: Sequence[str], *, timeout_s: float = LONG_TIMEOUT_S
) -> int:
    """Forget the snapshots with ``tags`` that ``keep`` does not keep, and prune their data; returns
    how many snapshots were forgotten. Without tags it would judge the whole repository: refused."""
    if not tags:
        raise ResticError("failed", "forget needs tags: it never judges the whole repository")
    out = run(
        repo,
        ["forget", "--json", "--prune", "--group-by", "tags", *keep_args(keep), *_tag_args(tags)],
        timeout_s=timeout_s,
    )
    return _removed(out.stdout)


def _removed(stdout: str) -> int:
    for line in stdout.splitlines():
        try:
            groups = json.loads(line)
        except ValueError:
            continue
        if isinstance(groups, list):
            removed = (g.get("remove") for g in groups if isinstance(g, dict))
            return sum(len(r) for r in removed if isinstance(r, list))
    return 0
