"""Rules for stateful volumes and failover that JSON Schema cannot say (see docs/stateful.md).

A stateful volume has one writer in the whole cluster, so its service runs one replica (0 stops it);
only a named volume can be stateful (a bind mount is one host's folder, nothing to lock or move);
``failover: restore-latest`` needs a backup of every stateful volume to restore from.
"""

from __future__ import annotations

from typing import Any

from meshop.errors import Violation
from meshop.model import names
from meshop.model.rules import Out, as_dict, as_list, check
from meshop.model.schema import show
from meshop.model.units import OutOfRange, parse_duration

MIN_BACKUP_EVERY = 10.0  # seconds: restic's own start-up and lock take about a second each
REPO_PREFIXES = ("sftp:", "s3:", "rest:")
REPOSITORY = "must be a restic repository: sftp:user@host:/path, s3:..., rest:... or an absolute local path"
SECRET_NAME = "must name a key in this service's secrets folder: '/'-separated segments of A-Z a-z 0-9 . _ -"


def is_repository(value: object) -> bool:
    """``sftp:``/``s3:``/``rest:`` then printable ASCII without spaces, or an absolute local path."""
    if not isinstance(value, str) or len(value) > 1024:
        return False
    for scheme in REPO_PREFIXES:
        rest = value.removeprefix(scheme)
        if rest != value:
            return bool(rest) and rest.isascii() and rest.isprintable() and " " not in rest and rest[0] != "-"
    return names.is_abs_path(value)


def stateful_rules(out: Out, spec: dict[str, Any]) -> None:
    stateful = []
    for i, vol in enumerate(as_list(spec.get("volumes"))):
        vol = as_dict(vol)
        if not isinstance(vol.get("stateful"), dict):
            continue
        path = f"spec.volumes[{i}].stateful"
        if "name" not in vol:
            out.append(Violation(path, "only a named volume can be stateful (a hostPath is one host's folder)"))
            continue
        stateful.append((path, vol["stateful"]))
        if vol.get("deleteWithService") is True:
            out.append(
                Violation(f"spec.volumes[{i}].deleteWithService", "a stateful volume is never deleted by meshop")
            )
        _backup_rules(out, f"{path}.backup", vol["stateful"].get("backup"))
    replicas = spec.get("replicas")
    if stateful and isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > 1:
        out.append(
            Violation(
                "spec.replicas",
                f"is {replicas}: a service with a stateful volume runs exactly 1 replica "
                f"(one writer in the cluster; 0 stops it), see {stateful[0][0]}",
            )
        )
    failover = spec.get("failover")
    if failover == "restore-latest":
        if not stateful:
            out.append(Violation("spec.failover", "restore-latest applies only to a service with a stateful volume"))
        for path, marker in stateful:
            if not isinstance(marker.get("backup"), dict):
                out.append(
                    Violation("spec.failover", f"restore-latest needs a backup of every stateful volume: {path}.backup")
                )


def _backup_rules(out: Out, path: str, backup: object) -> None:
    if not isinstance(backup, dict):
        return
    check(out, f"{path}.repository", backup.get("repository"), is_repository(backup.get("repository")), REPOSITORY)
    secret = backup.get("passwordSecret")
    check(out, f"{path}.passwordSecret", secret, names.is_consul_key(secret), SECRET_NAME)
    every = backup.get("every")
    if every is None or isinstance(every, bool) or not isinstance(every, (str, int, float)):
        return
    try:
        seconds = parse_duration(every)
    except OutOfRange:
        seconds = -1.0
    except ValueError:
        out.append(Violation(f"{path}.every", f"{show(every)} is not a duration like 10s, 15m or 1h"))
        return
    if seconds < MIN_BACKUP_EVERY:
        out.append(Violation(f"{path}.every", f"must be at least {MIN_BACKUP_EVERY:g}s and at most 168h"))
