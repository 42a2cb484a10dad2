"""Run one restic command: the only place meshop starts restic.

Each run gets a private 0700 folder holding the password file (``RESTIC_PASSWORD_FILE``; the password
is never on argv, where ``ps`` shows it, nor in the environment ssh inherits), and for ``sftp:`` the
known_hosts and identity files. The environment is built, not inherited: ``PATH``, ``HOME``, a locale,
the password file and the repository's allowed credentials, so an agent's own environment
(``RESTIC_PASSWORD_COMMAND``, ``RESTIC_REPOSITORY``) cannot change what runs. Output goes to files in
that folder and only the first ``MAX_OUTPUT`` bytes are read back. restic runs in its own process
group; on timeout that group (and only it) is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshop.errors import ResticError
from meshop.restic.output import classify, tail_message
from meshop.restic.repository import RepositorySpec, ssh_command
from meshop.ssh.session import default_known_hosts  # meshop's own, as `meshop node add` writes it

MAX_OUTPUT = 32 * 1024 * 1024
DEFAULT_TIMEOUT_S = 300.0


def restic_binary() -> str:
    found = os.environ.get("MESHOP_RESTIC") or shutil.which("restic")
    if not found:
        raise ResticError("failed", "restic is not installed (Debian: apt-get install restic)")
    return found


class RepositoryMissing(ResticError):
    """No repository at the URL (reason ``unreachable``): ``ensure_repository`` creates one then."""


@dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    duration_s: float


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="meshop-restic-"))
    try:
        path.chmod(0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _read_bounded(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(MAX_OUTPUT).decode("utf-8", "replace")


def _ssh_command(repo: RepositorySpec, folder: Path) -> str | None:
    target = repo.sftp
    if target is None:
        return None
    if repo.known_hosts is not None:
        known = _write_private(folder / "known_hosts", repo.known_hosts)
    else:
        known = default_known_hosts()
    identity = _write_private(folder / "identity", repo.identity.rstrip("\n") + "\n") if repo.identity else None
    return ssh_command(target, str(known), str(identity) if identity else None)


def _ssh_says(command: str) -> str:
    """restic 0.14 drops ssh's stderr ("unable to start the sftp session, error: EOF"): run the same ssh
    once, with nothing on stdin, to learn why (host key refused, connection refused, key denied)."""
    try:
        done = subprocess.run(
            command.split(" "), stdin=subprocess.DEVNULL, capture_output=True, timeout=20, env=_base_env()
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stderr[:4096].decode("utf-8", "replace")


def _base_env() -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LC_ALL": "C",
    }
    if "XDG_CACHE_HOME" in os.environ:
        env["XDG_CACHE_HOME"] = os.environ["XDG_CACHE_HOME"]
    return env


def _environment(repo: RepositorySpec, password_file: Path) -> dict[str, str]:
    return _base_env() | {"RESTIC_PASSWORD_FILE": str(password_file)} | dict(repo.env)


def run(
    repo: RepositorySpec,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    accept: frozenset[int] = frozenset({0}),
) -> Output:
    """``restic -r URL ARGS``; a non-accepted exit raises ResticError with the classified reason."""
    binary = restic_binary()
    with _private_dir() as folder:
        password = _write_private(folder / "password", repo.password)
        ssh = _ssh_command(repo, folder)
        options = ["-o", f"sftp.command={ssh}"] if ssh else []
        argv = [binary, "--repo", repo.url, "--quiet", *options, *args]
        started = time.monotonic()
        with (folder / "out").open("wb") as out, (folder / "err").open("wb") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=cwd,
                    env=_environment(repo, password),
                    start_new_session=True,
                )
            except OSError as exc:
                raise ResticError("failed", f"cannot start restic: {exc.strerror}") from None
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise ResticError(
                    "unreachable", f"restic {args[0]} on {repo.shown} did not finish within {timeout_s:.0f}s"
                ) from None
        duration = time.monotonic() - started
        output = Output(_read_bounded(folder / "out"), _read_bounded(folder / "err"), duration)
        if code not in accept:
            said = _ssh_says(ssh) if ssh and "unable to start the sftp session" in output.stderr else ""
            raise failure(repo, args[0], f"{output.stderr}\n{said}".strip())
    return output


def failure(repo: RepositorySpec, command: str, stderr: str) -> ResticError:
    """The ResticError for a failed command: its reason, and restic's words with the URL masked."""
    kind = classify(stderr)
    words = tail_message(stderr).replace(repo.url, repo.shown)
    if repo.password and repo.password in words:  # restic never prints it; make sure nothing echoes it
        words = words.replace(repo.password, "***")
    if kind == "missing":
        return RepositoryMissing("unreachable", f"no restic repository at {repo.shown}: {words}")
    return ResticError(kind, f"restic {command} on {repo.shown}: {words}")
