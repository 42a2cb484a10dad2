"""The repository spec refuses what must never reach restic's argv or environment; sftp URLs parse."""

from __future__ import annotations

import pytest

from meshop.errors import ResticError
from meshop.restic.repository import RepositorySpec, SftpTarget, parse_sftp, ssh_command


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sftp:backup@10.0.0.9:/srv/restic/vault", SftpTarget("backup", "10.0.0.9", 22, "/srv/restic/vault")),
        ("sftp:host.example:repo", SftpTarget(None, "host.example", 22, "repo")),
        ("sftp://root@127.0.0.1:2222//srv/r", SftpTarget("root", "127.0.0.1", 2222, "/srv/r")),
        ("sftp://u@[::1]:2200//r", SftpTarget("u", "[::1]", 2200, "/r")),
        ("sftp://u@h//r", SftpTarget("u", "h", 22, "/r")),
    ],
)
def test_sftp_urls_parse(url: str, expected: SftpTarget) -> None:
    assert parse_sftp(url) == expected


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("", "non-empty"),
        ("-o sftp.command=sh", "start with '-'"),
        ("/srv/a b", "whitespace"),
        ("/srv/x\n", "whitespace"),
        ("relative/path", "must be sftp:"),
        ("/srv/../etc", "'..'"),
        ("sftp:-oProxyCommand=sh@host:/r", "plain user"),
        ("sftp:u@-oProxyCommand=x:/r", "host name"),
        ("sftp://u@h:0//r", "port"),
        ("sftp://u@h:99999//r", "port"),
        ("sftp://u@h:²²//r", "port"),
        ("sftp:u@h:/r'x", "path may hold"),
        ("sftp:u@h:/srv/../etc", "path may hold"),
        ("sftp:u@h", "sftp:[user@]host"),
        ("/" + "a" * 2000, "longer than"),
    ],
)
def test_hostile_urls_are_refused(url: str, field: str) -> None:
    with pytest.raises(ResticError) as info:
        RepositorySpec(url, "pw")
    assert info.value.reason == "failed"
    assert "repository" in str(info.value) and field in str(info.value)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"RESTIC_PASSWORD_COMMAND": "sh -c id"}, "RESTIC_PASSWORD_COMMAND"),
        ({"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD"),
        ({"AWS_SECRET_ACCESS_KEY": "a\0b"}, "NUL"),
    ],
)
def test_env_only_carries_credentials(env: dict[str, str], words: str) -> None:
    with pytest.raises(ResticError, match=words):
        RepositorySpec("s3:https://s3.example/bucket", "pw", env=env)


def test_password_is_required_and_never_shown() -> None:
    with pytest.raises(ResticError, match="password: must be a non-empty"):
        RepositorySpec("/srv/r", "")
    spec = RepositorySpec("rest:https://user:hunter2@backup.example/repo", "s3cret", env={"AWS_REGION": "x"})
    assert "s3cret" not in repr(spec) and "hunter2" not in spec.shown
    assert spec.shown == "rest:https://***@backup.example/repo"


def test_ssh_command_is_strict_and_quote_free() -> None:
    command = ssh_command(parse_sftp("sftp://backup@127.0.0.1:2222//r"), "/run/k/known_hosts", "/run/k/id")
    parts = command.split(" ")
    assert "StrictHostKeyChecking=yes" in parts and "BatchMode=yes" in parts
    assert "UserKnownHostsFile=/run/k/known_hosts" in parts and "GlobalKnownHostsFile=/dev/null" in parts
    assert parts[:3] == ["ssh", "-F", "/dev/null"]
    assert parts[-4:] == ["-s", "--", "127.0.0.1", "sftp"]
    with pytest.raises(ResticError, match="characters restic would split"):
        ssh_command(parse_sftp("sftp:h:/r"), "/tmp/with space/known_hosts", None)
