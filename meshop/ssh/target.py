"""Where to SSH to, and how a host key is named. Pure.

A target is ``[user@]host[:port]`` (IPv6 as ``[addr]:port``); user and host are checked before they reach
a socket or a known_hosts line, so a hostile value cannot smuggle options or extra lines.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from meshop.model.digits import parse_port

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


class TargetError(ValueError):
    """A target or fingerprint that cannot be used; the message names the field and the reason."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str = "root"
    port: int = 22

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts: ``host`` on port 22, else ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_target(text: str, default_user: str = "root", default_port: int = 22) -> SshTarget:
    """``[user@]host[:port]`` -> SshTarget, or TargetError naming what is wrong."""
    user, _, rest = text.rpartition("@")
    user = user or default_user
    if not _USER.match(user):
        raise TargetError(f"target {text!r}: user {user!r} is not a valid login name")
    port = default_port
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise TargetError(f"target {text!r}: an IPv6 address is written [addr] or [addr]:port")
        port_text = tail[1:] if tail else ""
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise TargetError(f"target {text!r}: {host!r} is not an IPv6 address")
    else:
        host, _, port_text = rest.partition(":")
        if not _HOST.match(host) or ".." in host:
            raise TargetError(f"target {text!r}: host {host!r} is not a hostname or IP address")
    if port_text:
        parsed = parse_port(port_text)
        if parsed is None:
            raise TargetError(f"target {text!r}: port {port_text!r} is not 1-65535")
        port = parsed
    return SshTarget(host=host, user=user, port=port)


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (``ssh-keygen -lf``): ``SHA256:`` + unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def parse_fingerprint(text: str) -> str:
    """A ``--host-key`` value, checked: ``SHA256:`` and 43 base64 characters."""
    text = text.strip()
    if not _FINGERPRINT.match(text):
        raise TargetError(f"--host-key {text!r}: expected SHA256:<43 base64 characters> (ssh-keygen -lf)")
    return text
