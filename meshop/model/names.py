"""Name checks shared by validation and by every renderer that pastes a user value somewhere.

Each check is a full match of a small ASCII-only pattern: whatever passes cannot carry braces, quotes,
spaces, newlines or anything else a Caddyfile, a Docker label or a shell would read as syntax. A pattern
is compiled on its first use (``_full``, through ``re``'s own cache), not at import: compiling all of
them costs every command a few milliseconds on a small VM, and most documents need only two or three.
"""

from __future__ import annotations

import re

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# Kubernetes label syntax: name part and value are at most 63 of [A-Za-z0-9-_.], alphanumeric at the ends.
_QUALIFIED = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
# A Consul KV key meshop may read: path segments of safe characters, no "." or ".." segments.
_CONSUL_SEGMENT = r"[A-Za-z0-9_.-]+"
# A URL path (no query or fragment) whose characters are inert in a Caddyfile and a shell word.
_URL_PATH = r"/(?:[A-Za-z0-9._~!$&+,;=:@/-]|%[0-9A-Fa-f]{2})*"
_EMAIL = r"[A-Za-z0-9._%+-]{1,64}@(.+)"
_ABS_PATH = r"/[A-Za-z0-9._@+=,~/-]*"

# Docker reference grammar (distribution/reference), anchored by fullmatch.
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?"

MAX_HOSTNAME = 253
MAX_URL_PATH = 1024
MAX_IMAGE = 512


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _full(pattern: str, text: str) -> re.Match[str] | None:
    """``pattern`` (one of the above) matching all of ``text``; ``re`` compiles it once and keeps it."""
    return re.fullmatch(pattern, text, re.ASCII)


def is_dns_label(s: object) -> bool:
    """RFC 1123 label: 1-63 of a-z, 0-9 and '-', alphanumeric at both ends (names of everything)."""
    return _is_str(s) and _full(_LABEL, s) is not None


def is_hostname(s: object) -> bool:
    """Lowercase DNS hostname: RFC 1123 labels joined by dots, at most 253 characters, no trailing dot."""
    return _is_str(s) and len(s) <= MAX_HOSTNAME and _full(_HOSTNAME, s) is not None


def is_wildcard_hostname(s: object) -> bool:
    """A hostname, optionally with one leading ``*.`` label (``*.example.com``) as Caddy accepts."""
    if not _is_str(s):
        return False
    return is_hostname(s.removeprefix("*."))


def is_fqdn(s: object) -> bool:
    """A hostname that may end in one dot (DNS zone and TSIG key names are written that way)."""
    return _is_str(s) and is_hostname(s.removesuffix("."))


def host_in_domain(host: str, domain: str) -> bool:
    """True when ``host`` (possibly ``*.``-wildcarded) is ``domain`` or lies below it."""
    bare = host.removeprefix("*.")
    return bare == domain or bare.endswith("." + domain)


def is_env_name(s: object) -> bool:
    """POSIX-style environment variable name ``[A-Za-z_][A-Za-z0-9_]*``."""
    return _is_str(s) and _full(_ENV_NAME, s) is not None


def is_label_key(s: object) -> bool:
    """Kubernetes-style label key: optional DNS-subdomain prefix and '/', then a 63-character name."""
    if not _is_str(s):
        return False
    prefix, slash, name = s.rpartition("/")
    if slash and not is_hostname(prefix):
        return False
    return _full(_QUALIFIED, name) is not None


def is_label_value(s: object) -> bool:
    """Kubernetes-style label value: empty, or 63 characters of [A-Za-z0-9-_.] alphanumeric at the ends."""
    return _is_str(s) and (s == "" or _full(_QUALIFIED, s) is not None)


_ID = r"(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})"
_USER = rf"{_ID}(?::{_ID})?"


def is_user(s: object) -> bool:
    """Docker's ``--user``: ``user[:group]``, each a POSIX-ish name or a numeric id."""
    return _is_str(s) and _full(_USER, s) is not None


def is_consul_key(s: object) -> bool:
    """A relative Consul KV key of safe segments (``meshop/secrets/db``): no '/' at the ends, no '..'."""
    if not _is_str(s) or not s or len(s) > 512:
        return False
    return all(_full(_CONSUL_SEGMENT, p) and p not in (".", "..") for p in s.split("/"))


def is_url_path(s: object) -> bool:
    """A URL path starting with '/', without query, fragment, spaces, quotes, braces or '*'."""
    return _is_str(s) and len(s) <= MAX_URL_PATH and _full(_URL_PATH, s) is not None


def is_abs_path(s: object) -> bool:
    """An absolute filesystem path of plain characters, without '..' segments, ':' or ','."""
    if not _is_str(s) or len(s) > 4096 or _full(_ABS_PATH, s) is None:
        return False
    return ".." not in s.split("/")


def is_email(s: object) -> bool:
    """A plain address ``local@host.domain`` (it lands in the Caddyfile's global ``email``)."""
    if not _is_str(s):
        return False
    m = _full(_EMAIL, s)
    return m is not None and "." in m.group(1) and is_hostname(m.group(1).lower())


def is_image_reference(s: object) -> bool:
    """A Docker image reference ``[registry[:port]/]path[:tag][@digest]`` (distribution's grammar)."""
    return _is_str(s) and len(s) <= MAX_IMAGE and _full(_IMAGE, s) is not None
