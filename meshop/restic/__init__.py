"""restic, the one module that runs it: encrypted, deduplicating backups of stateful volumes.

    RepositorySpec(url, password, env={}, known_hosts=None, identity=None)
    ensure_repository(repo) -> bool          init when missing; idempotent
    backup(repo, source_dir, tags, host)     -> BackupResult(snapshot_id, bytes_added, total_bytes, files, duration_s)
    snapshots(repo, tags)                    -> list[Snapshot(id, short_id, time, tags, hostname)], oldest first
    restore(repo, snapshot_id | "latest", target_dir, tags) -> RestoreResult
    forget(repo, keep, tags) -> int          forget + prune, grouped by tags
    ResticError(reason, message)             reason: unreachable | wrong-password | disk-full | no-snapshot |
                                             locked | failed

Password by file (``RESTIC_PASSWORD_FILE``), never argv or logs; ``sftp:`` through ssh with strict host
keys (``repository.ssh_command``); restic's output parsed as hostile (``output``). See docs/stateful.md.

The names below load on first use (PEP 562): the agent imports ``meshop.restic.repository`` for its
allow-list at start-up, and a node without backups then never loads the commands, the output parser or
the SSH module (a returning node's start-up is part of its return time, docs/fleet.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshop.errors import ResticError
from meshop.model.exports import lazy_exports

if TYPE_CHECKING:
    from meshop.restic.commands import backup, ensure_repository, forget, keep_args, restore, snapshots
    from meshop.restic.output import BackupResult, RestoreResult, Snapshot
    from meshop.restic.repository import RepositorySpec

_WHERE = {
    "backup": "meshop.restic.commands",
    "ensure_repository": "meshop.restic.commands",
    "forget": "meshop.restic.commands",
    "keep_args": "meshop.restic.commands",
    "restore": "meshop.restic.commands",
    "snapshots": "meshop.restic.commands",
    "BackupResult": "meshop.restic.output",
    "RestoreResult": "meshop.restic.output",
    "Snapshot": "meshop.restic.output",
    "RepositorySpec": "meshop.restic.repository",
}


__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "BackupResult",
    "RepositorySpec",
    "ResticError",
    "RestoreResult",
    "Snapshot",
    "backup",
    "ensure_repository",
    "forget",
    "keep_args",
    "restore",
    "snapshots",
]
