"""Stateful volumes and failover: the schema, the cross-field rules, the KV form and the spec hash."""

from __future__ import annotations

from typing import Any

import pytest

from meshop.agent.planning.desired import effective_strategy
from meshop.model import parse_service, spec_hash, validate
from meshop.model.service import Backup, ServiceSpec, Stateful
from meshop.model.stateful_rules import REPOSITORY, SECRET_NAME

from .helpers import service

BACKUP = {"repository": "sftp:backup@10.0.0.9:/srv/restic/vault", "passwordSecret": "restic", "every": "15m"}


def stateful(stateful: Any = None, **spec: Any) -> dict[str, Any]:
    marker = {"backup": BACKUP} if stateful is None else stateful
    return service({"volumes": [{"name": "data", "mountPath": "/data", "stateful": marker}], **spec})


def found(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v.path, v.reason) for v in validate(doc)]


def test_the_briefs_example_is_valid_and_round_trips() -> None:
    backup = {
        **BACKUP,
        "keep": {"last": 3, "hourly": 24, "daily": 7},
        "prepare": {"exec": ["sh", "-c", "sqlite3 /data/db .backup /data/db.bak"]},
    }
    doc = stateful({"backup": backup}, replicas=1, failover="restore-latest")
    assert found(doc) == []
    spec = parse_service(doc).spec
    assert spec.failover == "restore-latest"
    assert spec.stateful_volumes[0].stateful == Stateful(
        Backup(
            "sftp:backup@10.0.0.9:/srv/restic/vault",
            "restic",
            900.0,
            spec.stateful_volumes[0].stateful.backup.keep,  # type: ignore[union-attr]
            ("sh", "-c", "sqlite3 /data/db .backup /data/db.bak"),
        )
    )
    assert dict(spec.stateful_volumes[0].stateful.backup.keep) == {"last": 3, "hourly": 24, "daily": 7}  # type: ignore[union-attr]
    assert ServiceSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("marker", "expect"),
    [
        ({}, Stateful(None)),
        ({"backup": {**BACKUP, "prepare": {"stop": True}}}, None),
        ({"backup": {**BACKUP, "repository": "/srv/restic/vault", "every": 10}}, None),
        ({"backup": {**BACKUP, "repository": "s3:s3.amazonaws.com/bucket"}}, None),
        ({"backup": {**BACKUP, "repository": "rest:https://backup.example.com:8000/vault"}}, None),
    ],
    ids=["empty-marker", "prepare-stop", "local-path", "s3", "rest"],
)
def test_valid_markers(marker: dict[str, Any], expect: Stateful | None) -> None:
    doc = stateful(marker)
    assert found(doc) == []
    volume = parse_service(doc).spec.stateful_volumes[0]
    assert expect is None or volume.stateful == expect


NOT_ONE = (
    "is 2: a service with a stateful volume runs exactly 1 replica (one writer in the cluster; 0 stops it), "
    "see spec.volumes[0].stateful"
)
NEEDS_BACKUP = "restore-latest needs a backup of every stateful volume: spec.volumes[0].stateful.backup"
BAD = [
    ("two-replicas", stateful(replicas=2), [("spec.replicas", NOT_ONE)]),
    (
        "host-path",
        service({"volumes": [{"hostPath": "/srv/x", "mountPath": "/x", "stateful": {}}]}),
        [
            ("spec.volumes[0].hostPath", "bind mounts are refused by the node policy (allowBindMounts)"),
            ("spec.volumes[0].stateful", "only a named volume can be stateful (a hostPath is one host's folder)"),
        ],
    ),
    (
        "delete-with-service",
        service({"volumes": [{"name": "data", "mountPath": "/data", "deleteWithService": True, "stateful": {}}]}),
        [("spec.volumes[0].deleteWithService", "a stateful volume is never deleted by meshop")],
    ),
    ("failover-without-backup", stateful({}, failover="restore-latest"), [("spec.failover", NEEDS_BACKUP)]),
    (
        "failover-without-stateful",
        service({"failover": "restore-latest"}),
        [("spec.failover", "restore-latest applies only to a service with a stateful volume")],
    ),
    ("failover-unknown", stateful(failover="always"), [("spec.failover", "must be one of: none, restore-latest")]),
    (
        "every-too-short",
        stateful({"backup": {**BACKUP, "every": "5s"}}),
        [("spec.volumes[0].stateful.backup.every", "must be at least 10s and at most 168h")],
    ),
    (
        "every-garbage",
        stateful({"backup": {**BACKUP, "every": "soon"}}),
        [("spec.volumes[0].stateful.backup.every", '"soon" is not a duration like 10s, 15m or 1h')],
    ),
    *[
        (
            f"repo-{name}",
            stateful({"backup": {**BACKUP, "repository": repo}}),
            [("spec.volumes[0].stateful.backup.repository", REPOSITORY)],
        )
        for name, repo in [
            ("ftp", "ftp:host/x"),
            ("relative", "srv/restic"),
            ("dotdot", "/srv/../etc"),
            ("option", "sftp:-oProxyCommand=sh"),
            ("space", "sftp:host:/a b"),
            ("newline", "s3:bucket\nx"),
            ("empty-rest", "rest:"),
        ]
    ],
    *[
        (
            f"secret-{name}",
            stateful({"backup": {**BACKUP, "passwordSecret": key}}),
            [("spec.volumes[0].stateful.backup.passwordSecret", SECRET_NAME)],
        )
        for name, key in [("dotdot", "../db/password"), ("absolute", "/meshop/secrets/x"), ("space", "a b")]
    ],
]


@pytest.mark.parametrize(("doc", "expect"), [(d, e) for _, d, e in BAD], ids=[n for n, _, _ in BAD])
def test_invalid(doc: dict[str, Any], expect: list[tuple[str, str]]) -> None:
    assert found(doc) == expect


def test_missing_backup_fields_are_named() -> None:
    assert found(stateful({"backup": {"every": "1m"}})) == [
        ("spec.volumes[0].stateful.backup.passwordSecret", "is required"),
        ("spec.volumes[0].stateful.backup.repository", "is required"),
    ]


def test_hash_ignores_backup_schedule_and_failover_but_not_the_marker() -> None:
    plain = parse_service(service({"volumes": [{"name": "data", "mountPath": "/data"}]})).spec
    marked = parse_service(stateful({})).spec
    backed = parse_service(stateful()).spec
    other = parse_service(stateful({"backup": {**BACKUP, "every": "1h"}}, failover="restore-latest")).spec
    assert spec_hash(plain) != spec_hash(marked)
    assert spec_hash(marked) == spec_hash(backed) == spec_hash(other)


def test_a_plain_service_keeps_its_hash() -> None:
    """Old assignments stay current: the new fields add nothing to a service that does not use them."""
    spec = parse_service(service({"volumes": [{"name": "data", "mountPath": "/data"}]})).spec
    assert "stateful" not in spec.to_dict()["volumes"][0]
    assert spec.stateful_volumes == ()


def test_stateful_services_update_stop_first() -> None:
    """Start-first would run the new container beside the old one on the same volume: two writers."""
    assert effective_strategy(parse_service(stateful()).spec) == "stop-first"
    assert effective_strategy(parse_service(service()).spec) == "start-first"
