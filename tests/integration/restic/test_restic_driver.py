"""meshop.restic against real restic: a local-path repository and a real sshd as the sftp: repository,
and each fault (unreachable, wrong password, host key, full disk, missing snapshot) as its reason."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.errors import ResticError
from meshop.restic import RepositorySpec, backup, ensure_repository, forget, restore, snapshots
from tests.support.procs import free_port
from tests.support.sshd import SshServer, keygen

TAGS = ("meshop", "service=db", "volume=data")
PASSWORD = "correct horse battery staple"


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    data = tmp_path / "volume"
    (data / "sub").mkdir(parents=True)
    (data / "db.sqlite").write_bytes(os.urandom(200_000))
    (data / "sub" / "log.txt").write_text("line 1\n")
    return data


def sftp_spec(server: SshServer, path: Path, **over: object) -> RepositorySpec:
    fields: dict[str, object] = {
        "url": f"sftp://root@127.0.0.1:{server.port}/{path}",
        "password": PASSWORD,
        "known_hosts": server.known_hosts_line(),
        "identity": (server.workdir / "client_key").read_text(),
    }
    return RepositorySpec(**(fields | over))  # type: ignore[arg-type]


def round_trip(repo: RepositorySpec, volume: Path, tmp_path: Path, *, full: bool = True) -> None:
    assert ensure_repository(repo) is True
    assert ensure_repository(repo) is False
    first = backup(repo, volume, TAGS, "node-1")
    assert first.files == 2 and first.total_bytes == 200_007 and first.bytes_added >= 200_000
    if not full:  # over sftp: the same commands, fewer of them (each is a new SSH connection)
        restored = restore(repo, first.snapshot_id, tmp_path / "restored", TAGS)
        assert restored.snapshot_id.startswith(first.snapshot_id) and restored.files == 2
        assert tree_digest(tmp_path / "restored") == tree_digest(volume)
        return
    (volume / "sub" / "log.txt").write_text("line 1\nline 2\n")
    second = backup(repo, volume, TAGS, "node-1")
    assert second.bytes_added < 20_000  # incremental: the unchanged file is not stored again
    listed = snapshots(repo, TAGS)
    assert [s.short_id for s in listed] == [first.snapshot_id[:8], second.snapshot_id[:8]]
    assert listed[0].hostname == "node-1" and set(TAGS) <= set(listed[0].tags)
    assert abs(listed[-1].time - time.time()) < 120
    expected = tree_digest(volume)
    result = restore(repo, "latest", tmp_path / "restored", TAGS)
    assert result.snapshot_id == listed[-1].id and tree_digest(tmp_path / "restored") == expected
    older = restore(repo, listed[0].short_id, tmp_path / "older", TAGS)
    assert older.files == 2 and (tmp_path / "older" / "sub" / "log.txt").read_text() == "line 1\n"
    assert forget(repo, {"last": 1}, TAGS) == 1
    assert [s.id for s in snapshots(repo, TAGS)] == [listed[-1].id]


def test_an_empty_volume_is_named_as_such_not_restics_empty_snapshot(tmp_path: Path) -> None:
    repo = RepositorySpec(str(tmp_path / "repo"), PASSWORD)
    ensure_repository(repo)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResticError, match="the volume is empty: nothing to back up yet"):
        backup(repo, tmp_path / "empty", TAGS, "node-1")
    (tmp_path / "empty" / "first").write_text("1\n")  # the service's first write: now it backs up
    assert backup(repo, tmp_path / "empty", TAGS, "node-1").files == 1


def test_local_repository_round_trip(volume: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the agent's own environment cannot steer restic: a password command there is not used
    monkeypatch.setenv("RESTIC_PASSWORD_COMMAND", "sh -c 'echo wrong'")
    monkeypatch.setenv("RESTIC_REPOSITORY", str(tmp_path / "elsewhere"))
    round_trip(RepositorySpec(str(tmp_path / "repo"), PASSWORD), volume, tmp_path)
    assert not (tmp_path / "elsewhere").exists()


def test_sftp_repository_round_trip(backup_sshd: SshServer, volume: Path, tmp_path: Path) -> None:
    round_trip(sftp_spec(backup_sshd, tmp_path / "vault"), volume, tmp_path, full=False)


def test_wrong_password(volume: Path, tmp_path: Path) -> None:
    ensure_repository(RepositorySpec(str(tmp_path / "repo"), PASSWORD))
    wrong = RepositorySpec(str(tmp_path / "repo"), "not-the-password")
    for call in (lambda: ensure_repository(wrong), lambda: backup(wrong, volume, TAGS, "n1")):
        with pytest.raises(ResticError) as info:
            call()
        assert info.value.reason == "wrong-password" and "not-the-password" not in str(info.value)


def test_unreachable_sftp_host(volume: Path, tmp_path: Path) -> None:
    repo = RepositorySpec(f"sftp://root@127.0.0.1:{free_port()}//srv/none", PASSWORD, known_hosts="")
    started = time.monotonic()
    with pytest.raises(ResticError) as info:
        backup(repo, volume, TAGS, "n1")
    assert info.value.reason == "unreachable" and time.monotonic() - started < 30


def test_sftp_host_key_is_verified(backup_sshd: SshServer, volume: Path, tmp_path: Path) -> None:
    other = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()[:2]
    impostor = f"[127.0.0.1]:{backup_sshd.port} {other[0]} {other[1]}\n"
    for known in ("", impostor):  # unlisted, then listed with another key: never accepted
        with pytest.raises(ResticError) as info:
            ensure_repository(sftp_spec(backup_sshd, tmp_path / "vault", known_hosts=known))
        assert info.value.reason == "unreachable" and "host key" in str(info.value).lower()
    assert not (tmp_path / "vault").exists()


def test_missing_repository_is_unreachable_for_backup(volume: Path, tmp_path: Path) -> None:
    with pytest.raises(ResticError) as info:
        backup(RepositorySpec(str(tmp_path / "none"), PASSWORD), volume, TAGS, "n1")
    assert info.value.reason == "unreachable" and "no restic repository" in str(info.value)


def test_missing_snapshots(volume: Path, tmp_path: Path) -> None:
    repo = RepositorySpec(str(tmp_path / "repo"), PASSWORD)
    ensure_repository(repo)
    with pytest.raises(ResticError) as info:
        restore(repo, "latest", tmp_path / "t0", TAGS)
    assert info.value.reason == "no-snapshot"
    made = backup(repo, volume, ("meshop", "service=other", "volume=data"), "n1")
    for ref in ("deadbeef", made.snapshot_id, "../etc"):  # absent; another service's; not an id
        with pytest.raises(ResticError) as info:
            restore(repo, ref, tmp_path / "t1", TAGS)
        assert info.value.reason == "no-snapshot"
    assert not (tmp_path / "t1").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a repository on it fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk(small_disk: Path, volume: Path, tmp_path: Path) -> None:
    repo = RepositorySpec(str(small_disk / "repo"), PASSWORD)
    ensure_repository(repo)
    (volume / "big").write_bytes(os.urandom(4_000_000))
    with pytest.raises(ResticError) as info:
        backup(repo, volume, TAGS, "n1")
    assert info.value.reason == "disk-full" and "no space left" in str(info.value)
    assert snapshots(repo, TAGS) == []


def test_the_password_is_never_on_argv_nor_in_the_environment(volume: Path, tmp_path: Path) -> None:
    """Sampled while restic runs: ``ps`` (any local user) and /proc/PID/environ never show the password."""
    import threading

    repo = RepositorySpec(str(tmp_path / "repo"), PASSWORD)
    ensure_repository(repo)
    (volume / "big").write_bytes(os.urandom(12_000_000))
    done = threading.Event()
    worker = threading.Thread(target=lambda: (backup(repo, volume, TAGS, "n1"), done.set()), daemon=True)
    worker.start()
    seen = 0
    secret = PASSWORD.encode()
    while not done.is_set() and worker.is_alive():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if b"restic" in argv.split(b"\0")[0] and str(tmp_path).encode() in argv:
                seen += 1
                assert secret not in argv and secret not in environ
                assert b"RESTIC_PASSWORD_FILE=" in environ and b"RESTIC_PASSWORD=" not in environ
        time.sleep(0.05)
    worker.join(timeout=120)
    assert done.is_set() and seen > 0, "restic was never seen running"
