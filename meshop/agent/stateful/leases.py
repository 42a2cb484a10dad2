"""The lease folder: the agent's word to the fence (``fence.py``) that a stateful copy may run, and back.

One file per stateful service, ``<service>.lease``, written by the agent after each successful renewal
of the service's volume locks: ``{"service", "deadline", "boot"}``, the deadline on CLOCK_MONOTONIC
(``time.monotonic`` on Linux: one clock for every process of the host, restarted on boot — hence the
kernel's boot id in each record, and a folder on tmpfs, ``/run/meshop/fence``). One file written by
the fence each look, ``fence.heartbeat`` (``{"at", "boot"}``): the agent starts no stateful copy
while it is stale.

Both sides read what the other wrote as untrusted input. The folder must be a real directory (not a
symlink) owned by this user with no access for anyone else (0700); a file must be a regular file (never
followed through a link), owned by this user, writable by no one else, with one link and at most
``MAX_BYTES``; its JSON must have exactly the expected keys and types, its service must match its
name, its boot id the running kernel's. Anything else is ``Untrusted`` — to the fence, no lease: the
copy dies. Files are written whole, by rename of a fresh temporary file, so a reader never sees half.
Everything goes through a descriptor of the folder (``openat``), so a folder swapped for a link
after the check is not followed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path("/run/meshop/fence")
HEARTBEAT = "fence.heartbeat"
SUFFIX = ".lease"
MAX_BYTES = 512  # a record is ~120 bytes; a bigger file is not ours
MAX_ENTRIES = 4096  # a folder holding more is not ours either: the fence then trusts no lease
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123 label: a service name


class Untrusted(Exception):
    """A lease, heartbeat or folder that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class Lease:
    service: str
    deadline: float  # CLOCK_MONOTONIC seconds: the copy may run until then


def boot_id() -> str:
    """The running kernel's boot id: a monotonic time means nothing across a reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()[:64]
    except OSError:
        return ""


def _number(value: object, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise Untrusted(f"{what} is not a finite number")
    return float(value)  # type: ignore[arg-type]


def _record(data: bytes, keys: set[str], boot: str) -> dict[str, object]:
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Untrusted("not JSON") from None
    if not isinstance(record, dict) or set(record) != keys:
        raise Untrusted(f"not a record with exactly {sorted(keys)}")
    if record["boot"] != boot:
        raise Untrusted("written before this boot (its monotonic time means nothing now)")
    return record


def encode_lease(lease: Lease, boot: str) -> bytes:
    return json.dumps({"service": lease.service, "deadline": lease.deadline, "boot": boot}).encode()


def decode_lease(name: str, data: bytes, boot: str) -> Lease:
    """The lease in file ``name``'s bytes; ``Untrusted`` for anything else."""
    record = _record(data, {"service", "deadline", "boot"}, boot)
    service = record["service"]
    if not isinstance(service, str) or name != service + SUFFIX:
        raise Untrusted("its service does not match its file name")
    return Lease(service, _number(record["deadline"], "deadline"))


def encode_beat(at: float, boot: str) -> bytes:
    return json.dumps({"at": at, "boot": boot}).encode()


def decode_beat(data: bytes, boot: str) -> float:
    return _number(_record(data, {"at", "boot"}, boot)["at"], "at")


def lease_name(service: str) -> str:
    if not _NAME.fullmatch(service):
        raise Untrusted(f"{service!r} is not a service name")
    return service + SUFFIX


class LeaseDir:
    """The folder, for either side: the agent grants and revokes leases and reads the heartbeat; the
    fence beats and reads the leases. Every method raises ``Untrusted`` (or ``OSError`` on a write)."""

    def __init__(self, path: Path = DEFAULT_DIR, boot: str | None = None) -> None:
        self.path = path
        self.boot = boot_id() if boot is None else boot
        self.uid = os.geteuid()

    @contextlib.contextmanager
    def _folder(self) -> Iterator[int]:
        """A descriptor of the folder, created 0700 when missing; ``Untrusted`` unless it is ours alone."""
        try:
            self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.path.mkdir(mode=0o700)
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise Untrusted(f"the lease folder {self.path} cannot be opened: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if info.st_uid != self.uid or info.st_mode & 0o077:
                raise Untrusted(
                    f"the lease folder {self.path} is not this user's alone "
                    f"(owner {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}; want {self.uid}, 0700)"
                )
            yield fd
        finally:
            os.close(fd)

    def _read(self, fd: int, name: str) -> bytes | None:
        """A file's bytes (None when missing); never through a link, never more than ``MAX_BYTES``."""
        try:
            file = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink
            raise Untrusted(f"{name}: {exc.strerror or exc}") from None
        try:
            info = os.fstat(file)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise Untrusted(f"{name} is not a plain file")
            if info.st_uid != self.uid or info.st_mode & 0o022:
                raise Untrusted(f"{name} is not this user's alone")
            if info.st_size > MAX_BYTES:
                raise Untrusted(f"{name} is too big ({info.st_size} bytes)")
            return os.read(file, MAX_BYTES + 1)[:MAX_BYTES]
        finally:
            os.close(file)

    def _write(self, name: str, data: bytes) -> None:
        with self._folder() as fd:
            temp = f".{name}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=fd)
            file = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
            try:
                os.write(file, data)
            finally:
                os.close(file)
            os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)

    # -- the agent's side -----------------------------------------------------------------------------

    def grant(self, lease: Lease) -> None:
        self._write(lease_name(lease.service), encode_lease(lease, self.boot))

    def revoke(self, service: str) -> None:
        with self._folder() as fd, contextlib.suppress(FileNotFoundError):
            os.unlink(lease_name(service), dir_fd=fd)

    def heartbeat(self) -> float | None:
        """The monotonic time of the fence's last look; None when no fence ever beat here."""
        with self._folder() as fd:
            data = self._read(fd, HEARTBEAT)
        return None if data is None else decode_beat(data, self.boot)

    # -- the fence's side -----------------------------------------------------------------------------

    def beat(self, now: float) -> None:
        self._write(HEARTBEAT, encode_beat(now, self.boot))

    def leases(self) -> dict[str, Lease | Untrusted]:
        """Every lease in the folder by service; a file that cannot be trusted maps to why."""
        found: dict[str, Lease | Untrusted] = {}
        with self._folder() as fd:
            names = os.listdir(fd)
            if len(names) > MAX_ENTRIES:
                raise Untrusted(f"the lease folder {self.path} holds {len(names)} entries")
            for name in names:
                service = name[: -len(SUFFIX)]
                if not name.endswith(SUFFIX) or not _NAME.fullmatch(service):
                    continue
                try:
                    data = self._read(fd, name)
                    if data is not None:
                        found[service] = decode_lease(name, data, self.boot)
                except Untrusted as exc:
                    found[service] = exc
        return found
