"""``meshop volume restore``, carried out by the node holding the service: stop, restore, swap, start.

Only the agent whose node runs the service *and holds its volume lock* acts on a request (the worker
checks both), so a restore never runs beside another writer; the service's own container is stopped
first (held by the reconciler meanwhile) and **always** started again. Per volume:

1. restic restores the snapshot (``latest`` or the id, which must carry the volume's tags) into a
   staging folder beside the volume's folder (``meshop-restore-<id>``, same filesystem);
2. only when that succeeded, the volume's current files move into ``meshop-before-restore-<id>``
   beside it (kept, never deleted: the user removes them) and the restored files move in: renames, so
   the volume holds either the old or the new files, never a mix of a half-done copy.

A failure before the swap leaves the volume as it was (the staging folder is removed).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from meshop import restic
from meshop.agent.backup.runner import BackupRunner, Failed, Target, tags_of
from meshop.errors import DriverError, ResticError
from meshop.model.records import RestoreReport, RestoreRequest

log = logging.getLogger(__name__)

STAGING = "meshop-restore-"
ASIDE = "meshop-before-restore-"


def swap(folder: Path, staging: Path, aside: Path) -> None:
    """Move ``folder``'s entries into ``aside`` (new), then ``staging``'s into ``folder``; renames only."""
    aside.mkdir()
    for entry in list(folder.iterdir()):
        entry.rename(aside / entry.name)
    for entry in list(staging.iterdir()):
        entry.rename(folder / entry.name)
    staging.rmdir()


def restore_service(runner: BackupRunner, targets: list[Target], request: RestoreRequest) -> RestoreReport:
    """Carry out ``request`` for one service's backed-up volumes (``targets``, one container)."""
    began = runner.mono()
    chosen = [t for t in targets if not request.volume or t.volume == request.volume]
    try:
        if not chosen:
            raise Failed("failed", f"no stateful volume {request.volume!r} with a backup on this service")
        if request.snapshot != "latest" and len(chosen) > 1:
            raise Failed("failed", "a snapshot id names one volume's snapshot: choose the volume (--volume)")
        repos = [runner.repository(t) for t in chosen]
        folders = [Path(runner.engine.volume_mountpoint(t.docker_volume, t.service, t.volume)) for t in chosen]
        work = lambda: _restore_all(chosen, repos, folders, request)  # noqa: E731
        done = runner.stopped(chosen[0].container_id, work, "restore")
    except Failed as exc:
        return RestoreReport(request.id, False, finished=runner.wall(), error=str(exc)[:500], reason=exc.reason)
    except ResticError as exc:
        return RestoreReport(request.id, False, finished=runner.wall(), error=str(exc)[:500], reason=exc.reason)
    except (DriverError, OSError) as exc:
        return RestoreReport(request.id, False, finished=runner.wall(), error=str(exc)[:500], reason="no-volume")
    log.info("restored %s of %s from %s", ", ".join(t.volume for t in chosen), chosen[0].service, done)
    return RestoreReport(
        request.id,
        True,
        volumes=tuple(t.volume for t in chosen),
        snapshots=tuple(done),
        kept_aside=f"{ASIDE}{request.id}",
        finished=runner.wall(),
        duration=round(runner.mono() - began, 3),
    )


def _restore_all(
    chosen: list[Target], repos: list[restic.RepositorySpec], folders: list[Path], request: RestoreRequest
) -> list[str]:
    done = []
    for target, repo, folder in zip(chosen, repos, folders, strict=True):
        staging = folder.parent / f"{STAGING}{request.id}"
        shutil.rmtree(staging, ignore_errors=True)  # a leftover of this very request: ours
        try:
            result = restic.restore(repo, request.snapshot, staging, tags_of(target))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        swap(folder, staging, folder.parent / f"{ASIDE}{request.id}")
        done.append(result.snapshot_id[:8])
    return done
