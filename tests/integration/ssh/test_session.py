"""The SSH module against a real sshd: host keys are verified before anything runs, SFTP writes are atomic
and private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from meshop.ssh.hostkeys import Trust
from meshop.ssh.session import HostKeyRefused, SshError, connect
from meshop.ssh.target import parse_target
from tests.support.sshd import SshServer

OTHER = "SHA256:" + "x" * 43


def _accepted_logins(sshd: SshServer) -> int:
    return sshd.process.log_tail(10_000).count("Accepted publickey")


def _connect(sshd, trust, known, **kw):
    return connect(parse_target(sshd.target), trust, known, identity=str(sshd.client_key), **kw)


def test_pinned_key_runs_commands_and_is_remembered(sshd, known):
    with _connect(sshd, Trust(pinned=sshd.fingerprint), known) as ssh:
        result = ssh.run("echo out; echo err >&2; exit 3")
    # the command's own stderr ends the stream: the login's shell start-up may write there first (root's
    # ~/.bashrc on these machines runs `pyenv init`, whose rehash races between parallel ssh sessions)
    assert (result.exit_code, result.stdout, result.stderr.splitlines()[-1:]) == (3, b"out\n", [b"err"])
    assert known.own.read_text() == sshd.known_hosts_line()
    assert stat.S_IMODE(known.own.stat().st_mode) == 0o600
    with _connect(sshd, Trust(), known) as ssh:  # known now: no flag needed
        assert ssh.run("true").ok


@pytest.mark.parametrize(
    "how", ["wrong-pin", "unknown", "changed-key", "changed-key-tofu", "revoked-tofu", "revoked-pinned"]
)
def test_untrusted_key_is_refused_before_login(sshd, known, tmp_path, how):
    """``revoked-*``: the user's known_hosts marks the server's key ``@revoked`` (next to a
    ``@cert-authority`` line): before, paramiko's loader raised InvalidHostKey on either marker line (a
    traceback), and had it skipped them, TOFU or a pin would have taken the revoked key."""
    marker = tmp_path / "ran"
    if how.startswith("changed-key"):
        other = SshServer(tmp_path / "other")  # a host key the server does not have
        known.read[0].write_text(other.known_hosts_line().replace(str(other.port), str(sshd.port)))
    if how.startswith("revoked"):
        ca = SshServer(tmp_path / "ca").known_hosts_line().split(" ", 1)[1]
        known.read[0].write_text(f"@cert-authority *.example.com {ca}@revoked {sshd.known_hosts_line()}")
    trust = {
        "wrong-pin": Trust(pinned=OTHER),
        "unknown": Trust(),
        "changed-key": Trust(),
        "changed-key-tofu": Trust(accept_new=True),
        "revoked-tofu": Trust(accept_new=True),
        "revoked-pinned": Trust(pinned=sshd.fingerprint),
    }[how]
    before = _accepted_logins(sshd)
    with pytest.raises(HostKeyRefused) as info, _connect(sshd, trust, known) as ssh:
        ssh.run(f"touch {marker}")
    assert info.value.offered == sshd.fingerprint
    assert sshd.fingerprint in str(info.value)  # shown, so the operator can compare it out of band
    assert not marker.exists()
    assert _accepted_logins(sshd) == before  # refused before authentication
    assert not known.own.exists()  # nothing remembered


def test_trust_on_first_use_prints_the_fingerprint(sshd, known):
    said: list[str] = []
    with _connect(sshd, Trust(accept_new=True), known, say=said.append) as ssh:
        assert ssh.run("true").ok
    assert len(said) == 1 and sshd.fingerprint in said[0]
    said.clear()
    with _connect(sshd, Trust(accept_new=True), known, say=said.append):
        pass
    assert said == []  # known now: nothing to trust any more


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
def test_user_known_hosts_is_read_not_written(sshd, known, hashed):
    """Plain and OpenSSH-hashed (``HashKnownHosts yes``) names, next to a CA line meshop skips."""
    import paramiko

    name, rest = sshd.known_hosts_line().split(" ", 1)
    ca = "@cert-authority *.example.com " + rest
    known.read[0].write_text(ca + (paramiko.HostKeys.hash_host(name) if hashed else name) + " " + rest)
    with _connect(sshd, Trust(), known) as ssh:
        assert ssh.run("true").ok
    assert not known.own.exists()


def test_put_file_is_private_from_the_start_and_replaces_atomically(sshd, known, tmp_path):
    path = tmp_path / "agent.env"
    path.write_text("old")
    with _connect(sshd, Trust(pinned=sshd.fingerprint), known) as ssh:
        ssh.put_file(str(path), b"CONSUL_HTTP_TOKEN=secret\n", 0o600)
        assert ssh.read_file(str(path)) == b"CONSUL_HTTP_TOKEN=secret\n"
        assert ssh.read_file(str(tmp_path / "missing")) is None
        assert list(ssh.lines("printf 'a\\nb\\n'; echo c >&2")) == [b"a", b"b", b"c"]
        got: list[bytes] = []
        with pytest.raises(SshError, match="exited 127"):  # e.g. no docker CLI: logs must not exit 0
            got.extend(ssh.lines("no-such-command-here"))
        assert any(b"not found" in line for line in got)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_put_file_never_creates_a_secret_another_user_could_open(sshd, known, tmp_path):
    """SFTP creates the file with the server's default mode before ``chmod``: in that moment another
    local user could open the temporary file (it sits next to the target, e.g. in /etc/meshop, 0755) and
    read the token through that descriptor later. At its creation either the file is private or it sits
    in a directory of put_file's own that only its owner may enter (before: 0644 in the target's folder)."""
    folder = tmp_path / "etc-meshop"
    folder.mkdir(mode=0o755)
    path = folder / "agent.env"
    seen: list[tuple[int, list[int]]] = []
    with _connect(sshd, Trust(pinned=sshd.fingerprint), known) as ssh:
        sftp = ssh.sftp()
        opened = sftp.open

        def spy(name, mode="r", *args, **kw):
            handle = opened(name, mode, *args, **kw)
            if "w" in mode:  # just created, nothing chmod-ed yet
                created = Path(name)
                own_dirs = [d for d in created.parents if folder in d.parents]  # below the target's folder
                seen.append((stat.S_IMODE(created.stat().st_mode), [stat.S_IMODE(d.stat().st_mode) for d in own_dirs]))
            return handle

        sftp.open = spy
        ssh.put_file(str(path), b"CONSUL_HTTP_TOKEN=secret\n", 0o600)
    assert path.read_bytes() == b"CONSUL_HTTP_TOKEN=secret\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(seen) == 1
    file_mode, dir_modes = seen[0]
    assert not file_mode & 0o077 or any(not d & 0o011 for d in dir_modes), seen
    assert sorted(p.name for p in folder.iterdir()) == ["agent.env"]  # nothing left behind


def test_a_failing_command_that_printed_a_secret_never_shows_it(sshd, known, tmp_path):
    """``node add`` reads the node's tokens from a command's stdout on the gateway; when that command
    fails after printing (a token, then a non-zero exit), the error showed stdout for want of stderr."""
    token = "8f1c0d2e-5b6a-4c3d-9e8f-0a1b2c3d4e5f"
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    with _connect(sshd, Trust(pinned=sshd.fingerprint), known) as ssh:
        with pytest.raises(SshError) as shown:
            ssh.check(f"cat {secret}; exit 3")
        assert token in str(shown.value)  # an ordinary command's output helps the reader
        with pytest.raises(SshError) as hidden:
            ssh.check(f"cat {secret}; echo 'consul: ACL not found' >&2; exit 3", secret_output=True)
        with pytest.raises(SshError) as silent:
            ssh.check(f"cat {secret}; exit 3", secret_output=True)
    assert "ACL not found" in str(hidden.value) and token not in str(hidden.value)
    assert token not in str(silent.value) and "exited 3" in str(silent.value)


@pytest.mark.parametrize(
    ("line", "trusted"),
    [
        ("[127.0.0.*]:{port} {key}", True),
        ("[127.0.0.?]:{port} {key}", True),
        ("other.example.com,[127.0.0.*]:* {key}", True),
        ("[127.0.0.*]:{port},![127.0.0.1]:{port} {key}", False),  # the negated match excludes it
        ("@cert-authority [127.0.0.*]:{port} {key}", False),  # a CA line is no host key, even this one
    ],
    ids=["star", "question", "list", "negated", "cert-authority"],
)
def test_known_hosts_patterns_as_openssh(sshd, known, line, trusted):
    """Before: a wildcard line was compared as a literal name, so a host that ``ssh`` trusts through
    ``*`` was refused by meshop; a @cert-authority line was skipped without a word."""
    _, key = sshd.known_hosts_line().split(" ", 1)
    known.read[0].write_text(line.format(port=sshd.port, key=key.strip()) + "\n")
    if trusted:
        with _connect(sshd, Trust(), known) as ssh:
            assert ssh.run("true").ok
        return
    with pytest.raises(HostKeyRefused) as info, _connect(sshd, Trust(), known):
        pass
    assert "is not in known_hosts" in str(info.value)
    if line.startswith("@cert-authority"):
        assert "does not verify host certificates" in str(info.value)
