"""An SSH connection with strict host key checking: run commands, stream output, upload over SFTP.

paramiko is imported when a connection is made, never when meshop starts. Host keys are judged by
``hostkeys.decide`` (known_hosts, a pinned ``--host-key``, or explicit trust-on-first-use); a refused key
ends the connection before authentication, so nothing runs and nothing is written. Keys accepted by pin
or TOFU are remembered in meshop's own known_hosts (``MESHOP_KNOWN_HOSTS``, default
``~/.config/meshop/known_hosts``); the user's ``~/.ssh/known_hosts`` is read, never written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import posixpath
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshop.errors import DriverError
from meshop.ssh.hostkeys import Trust, Verdict, decide, names_host
from meshop.ssh.target import SshTarget, fingerprint


class SshError(DriverError):
    """The SSH connection or a remote command failed."""


class HostKeyRefused(SshError):
    """The server's host key is not the one trusted; nothing was run. ``offered`` is its fingerprint."""

    def __init__(self, message: str, offered: str) -> None:
        super().__init__(message)
        self.offered = offered


def default_known_hosts() -> Path:
    env = os.environ.get("MESHOP_KNOWN_HOSTS")
    return Path(env) if env else Path.home() / ".config" / "meshop" / "known_hosts"


@dataclass(frozen=True)
class KnownHosts:
    """Where host keys are read from (``read``, in order) and where newly trusted ones are written."""

    own: Path = field(default_factory=default_known_hosts)
    read: tuple[Path, ...] = (Path.home() / ".ssh" / "known_hosts",)


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class KnownHostsListing:
    """What the known_hosts files say about one host name."""

    keys: dict[str, str]  # fingerprint -> key type of every key listed for it
    revoked: frozenset[str]  # fingerprints a @revoked line names for it
    cert_authority: bool  # a @cert-authority line names it (not trusted for that: no host certificates)


def _listed(paths: tuple[Path, ...], name: str) -> KnownHostsListing:
    """Every line of the files naming ``name`` (``hostkeys.names_host``: wildcards, ``!`` negation,
    hashed names). Lines are read one by one: paramiko's loader raises on any marker line
    (``@cert-authority``, common where SSH certificates are used, and ``@revoked``), which ended the
    command with a traceback and would have lost the revocation; a CA line is only noted, never read as
    a host key (meshop does not accept host certificates), and other markers are skipped."""
    found: dict[str, str] = {}
    revoked: set[str] = set()
    cert_authority = False
    for path in paths:
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise SshError(f"cannot read known_hosts {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = fields.pop(0) if fields[0].startswith("@") else ""
            if marker not in ("", "@revoked", "@cert-authority") or len(fields) < 3:
                continue
            if not names_host(fields[0], name, _hashed_matches):
                continue
            if marker == "@cert-authority":
                cert_authority = True
                continue
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except (binascii.Error, ValueError):
                raise SshError(f"known_hosts {path} line {number}: the key is not base64") from None
            if marker:
                revoked.add(fingerprint(blob))
            else:
                found[fingerprint(blob)] = fields[1]
    return KnownHostsListing(found, frozenset(revoked), cert_authority)


def _hashed_matches(pattern: str, name: str) -> bool:
    """OpenSSH's hashed form ``|1|salt|hash`` names ``name``."""
    import paramiko

    try:
        return hmac.compare_digest(paramiko.HostKeys.hash_host(name, pattern), pattern)
    except (binascii.Error, ValueError, IndexError):
        return False  # a malformed hashed entry names nobody


def _disabled_host_key_types(listed: dict[str, str], preferred: tuple[str, ...]) -> list[str]:
    """Host key algorithms to switch off so the server offers a key type known_hosts lists (as OpenSSH
    does); nothing when the host is unlisted."""
    if not listed:
        return []
    allowed = set(listed.values())
    if "ssh-rsa" in allowed:
        allowed |= {"rsa-sha2-256", "rsa-sha2-512"}
    return [alg for alg in preferred if alg not in allowed and not any(alg.startswith(a + "-cert") for a in allowed)]


def _remember(path: Path, name: str, key: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a", encoding="ascii") as fh:
        fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    os.chmod(path, 0o600)


def connect(
    target: SshTarget,
    trust: Trust | None = None,
    known: KnownHosts | None = None,
    *,
    identity: str | None = None,
    timeout: float = 15.0,
    say: Callable[[str], None] = lambda _: None,
) -> SshSession:
    """Open a session to ``target``; HostKeyRefused (with the offered fingerprint) when the key is not trusted.

    Every host key goes through ``decide``: paramiko's own known_hosts handling is not used (it would
    accept a listed host's key of another type without comparing), and there is no AutoAddPolicy.
    """
    import paramiko

    known = known or KnownHosts()
    trust = trust or Trust()
    name = target.known_hosts_name
    listing = _listed((*known.read, known.own), name)
    listed = listing.keys

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            offered = fingerprint(key.asbytes())
            decision = decide(offered, frozenset(listed), trust, listing.revoked, listing.cert_authority)
            if decision.verdict is Verdict.REFUSED:
                raise HostKeyRefused(f"host key of {target} refused: it {decision.reason}", offered)
            if decision.verdict is Verdict.TOFU:
                say(f"trusting {target} on first use: {key.get_name()} {offered}")
            if decision.verdict in (Verdict.TOFU, Verdict.PINNED):
                _remember(known.own, name, key)

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(Policy())  # no host keys loaded: every key reaches the policy
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=identity,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=identity is None,
            look_for_keys=identity is None,
            disabled_algorithms={"keys": _disabled_host_key_types(listed, paramiko.Transport._preferred_keys)},
        )
    except HostKeyRefused:
        client.close()
        raise
    except paramiko.AuthenticationException as exc:
        client.close()
        raise SshError(f"SSH to {target}: authentication failed ({exc}); is your key in authorized_keys?") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise SshError(f"SSH to {target} failed: {exc or type(exc).__name__}") from None
    return SshSession(client, target)


class SshSession:
    """One open connection. Commands are strings for the remote shell: callers quote every argument."""

    def __init__(self, client: Any, target: SshTarget) -> None:
        self._client = client
        self.target = target
        self._sftp: Any = None

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()

    def channel(self, command: str, *, pty: bool = False, term: str = "xterm", size: tuple[int, int] = (80, 24)) -> Any:
        """A started exec channel (for streaming and interactive use)."""
        try:
            chan = self._client.get_transport().open_session()
            if pty:
                chan.get_pty(term=term, width=size[0], height=size[1])
            chan.exec_command(command)
        except Exception as exc:  # noqa: BLE001 - paramiko raises several unrelated types here
            raise SshError(f"{self.target}: cannot start {command!r}: {exc}") from None
        return chan

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> Result:
        """Run ``command``; collects stdout and stderr (read together, so neither fills up and stalls)."""
        chan = self.channel(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            busy = False
            while chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if deadline is not None and time.monotonic() > deadline:
                chan.close()
                raise SshError(f"{self.target}: {command!r} did not finish within {timeout:.0f}s")
            if not busy:
                time.sleep(0.01)
        code = chan.recv_exit_status()
        chan.close()
        return Result(code, bytes(out), bytes(err))

    def check(
        self, command: str, *, stdin: bytes | None = None, timeout: float | None = None, secret_output: bool = False
    ) -> Result:
        """``run`` that raises SshError (with the tail of stderr) on a non-zero exit. ``secret_output``:
        the command prints a secret (a token), so its stdout never goes into the error, only stderr."""
        result = self.run(command, stdin=stdin, timeout=timeout)
        if not result.ok:
            shown = result.stderr if secret_output else (result.stderr or result.stdout)
            tail = shown.decode("utf-8", "replace").strip()[-800:]
            raise SshError(f"{self.target}: {command!r} exited {result.exit_code}: {tail}")
        return result

    def lines(self, command: str) -> Iterator[bytes]:
        """The command's output (stdout and stderr merged) line by line as it arrives; ends at exit. A
        command that exits non-zero raises ``SshError`` after its last line (e.g. no ``docker`` on the
        host: its lines say why, and the caller must not count it as a stream that ended well)."""
        chan = self.channel(command)
        chan.set_combine_stderr(True)
        chan.shutdown_write()
        buf = b""
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                buf += data
                *complete, buf = buf.split(b"\n")
                yield from complete
            if buf:
                yield buf
            status = chan.recv_exit_status()
            if status != 0:
                raise SshError(f"{self.target}: {command.split(' ', 1)[0]} exited {status}")
        finally:
            chan.close()

    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def read_file(self, path: str) -> bytes | None:
        """The remote file's bytes, or None when it does not exist."""
        try:
            with self.sftp().open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SshError(f"{self.target}: cannot read {path}: {exc}") from None

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``path`` atomically: written in a fresh directory of mode 0700 next to it, given ``mode``
        there, then renamed over the old one. SFTP creates a file with the server's default mode (0644
        under the usual umask) before any chmod: in a shared folder another local user could open it in
        that moment and read the secret written later through that descriptor; nobody else can enter
        the 0700 directory."""
        sftp = self.sftp()
        folder = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{secrets.token_hex(4)}.tmp")
        tmp = posixpath.join(folder, posixpath.basename(path))
        try:
            sftp.mkdir(folder, 0o700)
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
            sftp.posix_rename(tmp, path)
        except OSError as exc:
            raise SshError(f"{self.target}: cannot write {path}: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                sftp.remove(tmp)
            with contextlib.suppress(OSError):
                sftp.rmdir(folder)
