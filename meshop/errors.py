"""The exception tree of meshop; the CLI maps each branch to one exit code and one clear line.

MeshopError                    base; never shown with a traceback
├── NotFound                   the named service or node does not exist (exit 1)
├── DocumentError              a document cannot be read or is invalid (exit 1)
│   └── ValidationFailed       carries every violation (path + reason)
├── ConsulError                talking to Consul failed (exit 2)
│   ├── ConsulUnavailable      cannot connect / timed out: names the address
│   ├── ConsulAccessDenied     ACL token missing or lacking a permission (HTTP 403)
│   ├── NoQuorum               Consul answers, but its servers elect no leader (no Raft quorum)
│   ├── ConflictError          a check-and-set or transaction lost against another writer
│   │   └── TxnConflict        a transaction's check failed: which operations (by position)
│   └── ValueTooLarge          a value or transaction exceeds Consul's limits
├── SecretRefused              a secret key outside its service's folder, or a value no env can hold
├── ConfigError                a daemon's configuration (flag or config file): names the field (exit 64)
└── DriverError                Docker, Caddy or SSH refused an action (exit 3)
    └── ResticError            a restic command failed; ``reason`` names the kind of failure
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class MeshopError(Exception):
    """Base of every error meshop raises on purpose."""

    exit_code = 1


class Violation(NamedTuple):
    """One validation problem: where it is (``spec.ports[0].container``) and why; sorts by path, then
    reason. A NamedTuple, not a dataclass: every command imports this module, and ``dataclasses`` loads
    ``inspect`` (``meshop validate``'s start-up time)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class NotFound(MeshopError):
    """A service or node the user named does not exist."""

    exit_code = 1


class DocumentError(MeshopError):
    """A document cannot be parsed or does not describe something meshop can run."""

    exit_code = 1


class ValidationFailed(DocumentError):
    """A document broke one or more rules; ``violations`` lists every one of them."""

    def __init__(self, violations: list[Violation], source: str = "") -> None:
        self.violations = sorted(violations)
        self.source = source
        lines = "\n".join(f"  {v}" for v in self.violations)
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid document ({len(self.violations)} error(s)):\n{lines}")


class ConsulError(MeshopError):
    """A request to Consul failed."""

    exit_code = 2


class ConsulUnavailable(ConsulError):
    """Consul could not be reached or did not answer in time."""


class ConsulAccessDenied(ConsulError):
    """Consul refused the request: the ACL token is missing or lacks a permission."""


class NoQuorum(ConsulError):
    """Consul's servers elect no leader: every read and write waits and fails until a majority is back."""


class ConflictError(ConsulError):
    """A check-and-set write or a transaction lost against a concurrent writer."""


class TxnConflict(ConflictError):
    """A transaction was rolled back; ``failed`` holds the positions of the operations that failed."""

    def __init__(self, message: str, failed: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed


class ValueTooLarge(ConsulError):
    """A value or a transaction exceeds what Consul accepts (512 KiB per value, 64 ops per txn)."""


class SecretRefused(MeshopError):
    """The agent will not read or pass on a secret: its key is outside the service's own secrets folder,
    or its value cannot be an environment variable (a NUL byte). The message never holds the value."""


class ConfigError(MeshopError):
    """A daemon's configuration is refused: ``field`` (the config file's key; ``--field-name`` as a flag) and
    ``reason``; ``source`` is the config file the value came from, or empty for a flag, its environment
    variable, or a field given nowhere (``missing``). The CLI shows it as a usage error of that flag."""

    exit_code = 64

    def __init__(self, field: str, reason: str, source: str = "", *, missing: bool = False) -> None:
        self.field, self.reason, self.source, self.missing = field, reason, source, missing
        super().__init__(f"{source}: {field}: {reason}" if source else f"{field}: {reason}")


class DriverError(MeshopError):
    """A host-side driver (Docker, Caddy, SSH) could not carry out an action."""

    exit_code = 3


ResticReason = Literal["unreachable", "wrong-password", "disk-full", "no-snapshot", "locked", "failed"]


class ResticError(DriverError):
    """A restic command failed. ``reason`` is one of ``ResticReason``: the repository cannot be reached
    (network, SSH host key, missing repository), the password is wrong, its disk is full, the snapshot
    asked for does not exist, another process holds its lock, or anything else. The message never holds
    the password or any other credential."""

    def __init__(self, reason: ResticReason, message: str) -> None:
        super().__init__(message)
        self.reason: ResticReason = reason
