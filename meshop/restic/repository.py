"""Which repository, and how restic reaches it: pure validation of what a user (or a hostile KV) wrote.

A repository is named as restic names it: ``sftp:user@host:/path`` or ``sftp://user@host:port//path``,
``s3:...``, ``rest:http(s)://...``, or an absolute local path. Every value below ends up on restic's
command line or in its environment, so each is checked before anything runs: no leading ``-`` (it
would be read as an option), no whitespace or control characters, no quotes in what becomes the SSH
command. ``env`` may only carry the credentials restic's remote backends read (``ENV_ALLOWED``): a
``RESTIC_PASSWORD_COMMAND`` or ``LD_PRELOAD`` from a document would run code on the node.

For ``sftp:`` meshop gives restic its own SSH command (``sftp.command``) so the host key is checked
strictly against a known_hosts meshop names (``StrictHostKeyChecking=yes``), the user's
``~/.ssh/config`` is not read, and nothing ever prompts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshop.errors import ResticError
from meshop.model.digits import parse_port

ENV_ALLOWED = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "RESTIC_REST_USERNAME",
        "RESTIC_REST_PASSWORD",
    }
)
MAX_URL = 1024
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_.,+@%=/~-]{1,512}")
_SHORT = re.compile(r"sftp:(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]*\]|[^:/@]+):(?P<path>.+)")
_LONG = re.compile(r"sftp://(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]*\]|[^:/@]+)(?::(?P<port>[^/]*))?/(?P<path>.+)")
_REMOTE_PREFIXES = ("s3:", "rest:", "b2:", "azure:", "gs:", "swift:")


@dataclass(frozen=True)
class SftpTarget:
    """Where an ``sftp:`` repository lives; ``path`` as restic reads it from the URL."""

    user: str | None
    host: str
    port: int
    path: str

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts: ``host`` on port 22, ``[host]:port`` otherwise."""
        bare = self.host.strip("[]")
        return bare if self.port == 22 else f"[{bare}]:{self.port}"


@dataclass(frozen=True)
class RepositorySpec:
    """A restic repository and its credentials. ``password`` never reaches argv, logs or messages;
    ``known_hosts`` is the text of known_hosts lines for an ``sftp:`` host (None: meshop's own file,
    ``MESHOP_KNOWN_HOSTS`` or ``~/.config/meshop/known_hosts``); ``identity`` the text of a private SSH key
    (None: ssh's default keys). Both are written to a private 0600 folder for the one command."""

    url: str
    password: str = field(repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    known_hosts: str | None = field(default=None, repr=False)
    identity: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_spec(self)

    @property
    def sftp(self) -> SftpTarget | None:
        return parse_sftp(self.url) if self.url.startswith("sftp:") else None

    @property
    def shown(self) -> str:
        return masked(self.url)


def masked(url: str) -> str:
    """A URL for messages and records: restic URLs may carry ``user:password@`` (rest:); masked."""
    return re.sub(r"://[^/@\s]*:[^/@\s]*@", "://***@", url)


def _refuse(message: str) -> ResticError:
    return ResticError("failed", message)


def check_spec(spec: RepositorySpec) -> None:
    """Refuse a spec restic must not be run with (ResticError reason ``failed``, naming the field)."""
    url = spec.url
    if not isinstance(url, str) or not url:
        raise _refuse("repository: must be a non-empty string")
    if len(url) > MAX_URL:
        raise _refuse(f"repository: longer than {MAX_URL} characters")
    if url.startswith("-") or any(c.isspace() or not c.isprintable() for c in url):
        raise _refuse("repository: must not start with '-' or hold whitespace or control characters")
    if url.startswith("sftp:"):
        parse_sftp(url)
    elif url.startswith("/"):
        if "/../" in f"{url}/" or "\\" in url:
            raise _refuse("repository: a local path must be absolute and without '..'")
    elif not url.startswith(_REMOTE_PREFIXES):
        raise _refuse("repository: must be sftp:, s3:, rest: (or another restic backend) or an absolute path")
    if not isinstance(spec.password, str) or not spec.password or "\0" in spec.password:
        raise _refuse("password: must be a non-empty string without NUL bytes")
    for name, value in spec.env.items():
        if name not in ENV_ALLOWED:
            raise _refuse(f"env: {name!r} is not a repository credential meshop passes to restic")
        if not isinstance(value, str) or "\0" in value:
            raise _refuse(f"env: {name}: must be a string without NUL bytes")
    for label, text in (("known_hosts", spec.known_hosts), ("identity", spec.identity)):
        if text is not None and (not isinstance(text, str) or "\0" in text):
            raise _refuse(f"{label}: must be text")


def parse_sftp(url: str) -> SftpTarget:
    """``sftp:[user@]host:path`` or ``sftp://[user@]host[:port]/path``, every part checked."""
    match = _LONG.fullmatch(url) if url.startswith("sftp://") else _SHORT.fullmatch(url)
    if match is None:
        raise _refuse("repository: an sftp: repository is sftp:[user@]host:/path or sftp://[user@]host[:port]//path")
    user, host, path = match["user"], match["host"], match["path"]
    port_text = match.groupdict().get("port")
    port = 22 if not port_text else parse_port(port_text)
    if port is None:
        raise _refuse("repository: the sftp port must be 1-65535")
    if user is not None and not _USER.fullmatch(user):
        raise _refuse("repository: the sftp user must be a plain user name")
    if not _HOST.fullmatch(host):
        raise _refuse("repository: the sftp host must be a host name or an IP address")
    if not _SAFE_PATH.fullmatch(path) or "/../" in f"/{path}/":
        raise _refuse("repository: the sftp path may hold letters, digits and _.,+@%=/~- only, and no '..'")
    return SftpTarget(user, host, port, path)


def ssh_command(target: SftpTarget, known_hosts: str, identity: str | None) -> str:
    """restic's ``sftp.command``: strict host keys from ``known_hosts`` (a file path), no user config,
    no prompts, a bounded connect; split by restic like a shell line, so every part is quote-free."""
    parts = [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(target.port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
    ]
    if identity is not None:
        parts += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    if target.user is not None:
        parts += ["-l", target.user]
    parts += ["-s", "--", target.host.strip("[]"), "sftp"]
    for part in parts:
        if not part or any(c.isspace() or c in "'\"\\" for c in part):
            raise _refuse(f"cannot build the ssh command: {part!r} holds characters restic would split")
    return " ".join(parts)
