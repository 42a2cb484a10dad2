"""The certificate store's sync rule (pure) and its checks of what other gateways wrote."""

from __future__ import annotations

import pytest

from meshop.gateway.certs import FileState, SyncPlan, plan_sync, shareable

A, B = FileState("a", 10.0), FileState("b", 20.0)
CA = "pki/authorities/local/root.crt"
CERT = "certificates/local/web.example.com/web.example.com.crt"


@pytest.mark.parametrize(
    ("local", "remote", "at_start", "expected"),
    [
        ({}, {CA: A, CERT: A}, True, SyncPlan(downloads=(CERT, CA))),
        ({CA: B}, {CA: A}, True, SyncPlan(downloads=(CA,))),  # at start KV wins, even over a newer CA
        ({CA: A}, {CA: A}, True, SyncPlan()),
        ({CA: A, CERT: A}, {}, False, SyncPlan(uploads=(CERT, CA))),
        ({CERT: B}, {CERT: A}, False, SyncPlan(replaces=(CERT,))),  # a renewal goes out
        ({CERT: A}, {CERT: B}, False, SyncPlan()),  # KV's is newer: left for the next start
        ({CA: B}, {CA: A}, False, SyncPlan()),  # the CA is create-only: the first gateway's wins
    ],
    ids=["fresh-start", "start-kv-wins", "start-in-step", "upload-new", "renewal", "older-local", "ca-create-only"],
)
def test_plan_sync(local, remote, at_start, expected) -> None:
    assert plan_sync(local, remote, at_start=at_start) == expected


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        (CA, True),
        (CERT, True),
        ("locks/issue_cert_web.lock", False),
        ("instance.uuid", False),
        ("../../etc/passwd", False),
        ("certificates//x", False),
        ("/abs", False),
    ],
)
def test_shareable(rel: str, ok: bool) -> None:
    assert shareable(rel) is ok


def entry(rel: str, data: bytes, sha: str | None = None):
    import base64
    import hashlib
    import json

    from meshop.consul.kv import Entry

    body = {"mtime": 1.0, "sha256": sha or hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode()}
    return Entry(f"secrets/meshop-gateway/certs/{rel}", json.dumps(body).encode(), 7)


class Listed:
    """The one call ``CertSync.remote`` makes, answering with entries another gateway might have written."""

    def __init__(self, *entries) -> None:
        from meshop.consul.kv import Listing

        self.listing = Listing(1, tuple(entries))

    def list(self, prefix: str):
        return self.listing


def test_hostile_entries_are_refused_and_nothing_is_written_outside(tmp_path) -> None:
    from meshop.gateway.certs import CertSync

    data_dir = tmp_path / "data" / "caddy"
    store = Listed(
        entry("../../../outside", b"x"),
        entry("pki/authorities/local/root.crt", b"real"),
        entry("certificates/local/a/a.key", b"tampered", sha="0" * 64),
        entry("locks/x.lock", b"lock"),
    )
    plan = CertSync(store, data_dir).sync(at_start=True)  # type: ignore[arg-type]
    assert plan.downloads == ("pki/authorities/local/root.crt",)
    assert (data_dir / "pki/authorities/local/root.crt").read_bytes() == b"real"
    assert (data_dir / "pki/authorities/local/root.crt").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "outside").exists() and not (data_dir / "locks").exists()
