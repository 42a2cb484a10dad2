"""One backup of one stateful volume: credentials, prepare, restic backup, retention, listing.

Steps, each failure an ``Outcome`` with a reason (never an exception out of ``run``):

1. the repository's password from the service's own secrets folder (``passwordSecret``), and the
   optional ``<passwordSecret>-ssh-key`` (an SSH private key for ``sftp:``), ``<passwordSecret>-known-hosts``
   (known_hosts lines; without it meshop's own known_hosts file on the node) and ``<passwordSecret>-env``
   (``NAME=value`` lines: S3 / REST credentials, ``meshop.restic.repository.ENV_ALLOWED`` only);
2. the repository is created when missing (once per agent run);
3. ``prepare``: ``exec`` runs the command in the running container (a non-zero exit: no backup, the
   service untouched), or ``stop`` stops the container and **always** starts it again afterwards;
4. ``restic backup`` of the volume's folder on this host (Docker's ``Mountpoint``), tagged
   ``meshop``, ``service=<s>``, ``volume=<v>``, with the node as host;
5. retention (``keep``; its failure is reported, the snapshot stands), then the snapshot list.

Nothing here ever stops or restarts a running service except the user's ``prepare: {stop: true}``
(and a ``meshop volume restore`` in place, through ``stopped``).

One runner serves the agent's backup worker and its restorer (their threads and the reconcile loop's):
``paused`` (the containers ``stopped`` holds stopped, which the reconciler must not restart) and the
repositories already made are guarded by one mutex. Two callers that would stop the same container
take turns (each stops it and starts it again), and it stays in ``paused`` until both are done.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from meshop import restic
from meshop.errors import ConsulError, DriverError, ResticError, SecretRefused
from meshop.model import Backup, keys
from meshop.model.records import BackupReason
from meshop.restic.repository import ENV_ALLOWED

log = logging.getLogger(__name__)

T = TypeVar("T")
PREPARE_TIMEOUT = 600.0  # seconds a prepare command may run
MAX_SECRET = 64 * 1024


class BackupEngine(Protocol):
    """``engine.docker_driver.DockerDriver``'s backup methods."""

    def volume_mountpoint(self, name: str, service: str, volume: str, /) -> str: ...

    def exec_in(self, container_id: str, argv: list[str], timeout: float, /) -> int: ...

    def stop(self, container_id: str, grace: float, /) -> None: ...

    def start(self, container_id: str, /) -> None: ...


class SecretGetter(Protocol):
    """``meshop.consul.secrets.SecretReader``: refuses keys outside the service's folder."""

    def get(self, service: str, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class Target:
    service: str
    volume: str  # the spec's volume name
    docker_volume: str  # this node's Docker volume of it
    container_id: str  # the service's running container on this node
    backup: Backup


@dataclass(frozen=True)
class Outcome:
    ok: bool
    started: float  # wall clock, for people
    duration: float
    result: restic.BackupResult | None = None
    snapshots: tuple[restic.Snapshot, ...] = ()
    error: str = ""
    reason: BackupReason = ""


def tags_of(target: Target) -> tuple[str, ...]:
    """The tags of a volume's snapshots: its backups carry them, a restore takes only snapshots with them."""
    return ("meshop", f"service={target.service}", f"volume={target.volume}")


class Failed(Exception):
    def __init__(self, reason: BackupReason, message: str) -> None:
        super().__init__(message)
        self.reason: BackupReason = reason


@dataclass
class BackupRunner:
    node: str
    prefix: str
    engine: BackupEngine
    secrets: SecretGetter
    wall: Callable[[], float]
    mono: Callable[[], float]
    stop_grace: float = 10.0
    prepare_timeout: float = PREPARE_TIMEOUT
    _ready_repos: set[str] = field(default_factory=set)
    _pauses: Counter[str] = field(default_factory=Counter)  # container id -> callers holding or awaiting it
    _turns: dict[str, threading.Lock] = field(default_factory=dict)  # container id -> whose turn to stop it
    _mu: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def paused(self) -> frozenset[str]:
        """The containers ``stopped`` holds stopped right now (a backup's ``prepare: stop``, a restore):
        the reconciler holds them instead of repairing them; read from any thread."""
        with self._mu:
            return frozenset(self._pauses)

    def run(self, target: Target) -> Outcome:
        started, began = self.wall(), self.mono()
        try:
            result, snapshots = self._run(target)
        except Failed as exc:
            log.warning("backup of %s/%s failed: %s", target.service, target.volume, exc)
            return Outcome(False, started, self.mono() - began, error=str(exc)[:500], reason=exc.reason)
        log.info(
            "backed up %s/%s: snapshot %s, %d bytes new",
            target.service,
            target.volume,
            result.snapshot_id,
            result.bytes_added,
        )
        return Outcome(True, started, self.mono() - began, result, snapshots)

    def _run(self, target: Target) -> tuple[restic.BackupResult, tuple[restic.Snapshot, ...]]:
        repo = self.repository(target)
        tags = tags_of(target)
        try:
            with self._mu:
                ready = repo.url in self._ready_repos
            if not ready:
                restic.ensure_repository(repo)  # idempotent: two threads may both make sure
                with self._mu:
                    self._ready_repos.add(repo.url)
            try:
                folder = Path(self.engine.volume_mountpoint(target.docker_volume, target.service, target.volume))
            except DriverError as exc:
                raise Failed("no-volume", f"the volume's folder: {exc}") from None
            result = self._prepared(target, lambda: restic.backup(repo, folder, tags, self.node))
        except ResticError as exc:
            raise Failed(exc.reason, str(exc)) from None
        keep = dict(target.backup.keep)
        try:
            if any(count > 0 for count in keep.values()):
                restic.forget(repo, {k: v for k, v in keep.items() if v > 0}, tags)
            listed = tuple(restic.snapshots(repo, tags))
        except ResticError as exc:  # the snapshot is taken: report, do not count it as lost
            log.warning("retention of %s/%s failed: %s", target.service, target.volume, exc)
            listed = ()
        return result, listed

    def _prepared(self, target: Target, take: Callable[[], restic.BackupResult]) -> restic.BackupResult:
        backup, cid = target.backup, target.container_id
        if backup.prepare_exec is not None:
            try:
                code = self.engine.exec_in(cid, list(backup.prepare_exec), self.prepare_timeout)
            except DriverError as exc:
                raise Failed("prepare-failed", f"prepare command: {exc}") from None
            if code != 0:
                raise Failed("prepare-failed", f"prepare command exited {code}; no backup taken")
            return take()
        if not backup.prepare_stop:
            return take()
        return self.stopped(cid, take, "backup")

    def stopped(self, cid: str, work: Callable[[], T], what: str) -> T:
        """Run ``work`` with the container stopped (the reconciler holds it meanwhile: a stopped
        container is not a crash to repair) and **always** start the same container again. Another
        caller's stop of the same container waits for its turn."""
        with self._mu:
            self._pauses[cid] += 1
            turn = self._turns.setdefault(cid, threading.Lock())
        try:
            with turn:
                return self._stopped(cid, work, what)
        finally:
            with self._mu:
                self._pauses[cid] -= 1
                if self._pauses[cid] <= 0:  # nobody holds or awaits it: the next caller makes a new turn
                    del self._pauses[cid]
                    del self._turns[cid]

    def _stopped(self, cid: str, work: Callable[[], T], what: str) -> T:
        try:
            try:
                self.engine.stop(cid, self.stop_grace)
            except DriverError as exc:
                raise Failed("prepare-failed", f"stopping the service for its {what}: {exc}") from None
            return work()
        finally:
            try:
                self.engine.start(cid)
            except DriverError as exc:  # the reconciler starts it on its next pass
                log.error("starting %s again after its %s failed: %s", cid[:12], what, exc)

    def repository(self, target: Target) -> restic.RepositorySpec:
        """The repository with its credentials from the service's secrets; ``Failed`` says which is missing."""
        backup = target.backup
        password = self._secret(target.service, backup.password_secret, required=True)
        assert password is not None
        identity = self._secret(target.service, f"{backup.password_secret}-ssh-key")
        known = self._secret(target.service, f"{backup.password_secret}-known-hosts")
        env_text = self._secret(target.service, f"{backup.password_secret}-env") or ""
        try:
            return restic.RepositorySpec(
                backup.repository, password.strip("\n"), parse_env(env_text), known_hosts=known, identity=identity
            )
        except ResticError as exc:
            raise Failed("failed", str(exc)) from None

    def _secret(self, service: str, name: str, *, required: bool = False) -> str | None:
        key = keys.secret_folder(self.prefix, service) + name
        try:
            value = self.secrets.get(service, key)
        except SecretRefused as exc:
            raise Failed("no-password", str(exc)) from None
        except ConsulError as exc:
            raise Failed("no-password", f"reading secret key {key}: {exc}") from None
        if value is None and required:
            raise Failed("no-password", f"secret key {key} (passwordSecret) does not exist")
        if value is not None and (len(value) > MAX_SECRET or "\0" in value):
            raise Failed("no-password", f"secret key {key}: not text of at most {MAX_SECRET} bytes")
        return value


def parse_env(text: str) -> dict[str, str]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped); only repository credentials."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in ENV_ALLOWED:
            raise Failed("failed", f"-env secret line {number}: not NAME=value with NAME one of {sorted(ENV_ALLOWED)}")
        env[name.strip()] = value
    return env
