"""The host key decision, apart from paramiko: pure.

Rule: a key listed for the host in a known_hosts file is the only one accepted; a listed host that offers
another key is refused (a changed key is never overridden here, only by editing known_hosts). An unlisted
host is accepted only when its fingerprint equals the pinned ``--host-key``, or on explicit
trust-on-first-use (``--accept-new-host-key``), which prints the fingerprint; either way the key is then
remembered in meshop's own known_hosts. Anything else is refused, with the fingerprint shown so the
operator can compare it out of band. There is no "accept anything" mode.

A known_hosts line names its hosts as OpenSSH does: a comma-separated list of patterns, ``*`` and ``?``
wildcards, case-insensitive, and a pattern starting with ``!`` excludes: a host a negated pattern
matches is not named by the line, whatever else in it matches. ``@cert-authority`` lines are never
read as host keys: meshop does not verify host certificates, so such a line does not make a host
trusted (the refusal says so).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    KNOWN = "known"  # listed with this key
    PINNED = "pinned"  # unlisted, matches --host-key: accept and remember
    TOFU = "tofu"  # unlisted, trust-on-first-use asked for: accept, print, remember
    REFUSED = "refused"


@dataclass(frozen=True)
class Trust:
    """How host keys are judged for one command."""

    pinned: str | None = None  # SHA256:... from --host-key
    accept_new: bool = False  # --accept-new-host-key (TOFU)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""


CA_NOTE = (
    "; known_hosts has a @cert-authority line for it, but meshop does not verify host certificates, "
    "so that line does not make the host trusted"
)


def pattern_matches(pattern: str, name: str) -> bool:
    """One OpenSSH host pattern (no ``!``) against ``name``: ``*`` any run, ``?`` one character, the
    rest literal (``[host]:port`` brackets included), case-insensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name.lower(), re.DOTALL) is not None


def names_host(field: str, name: str, hashed: Callable[[str, str], bool] = lambda _p, _n: False) -> bool:
    """Whether a known_hosts host field (``a,*.b,!c.b``) names ``name``, as OpenSSH's
    ``match_hostname``: a matching ``!pattern`` excludes at once; otherwise any matching pattern names
    it. ``hashed(pattern, name)`` judges OpenSSH's hashed form ``|1|salt|hash`` (no wildcards there)."""
    found = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if not pattern:
            continue
        matched = hashed(pattern, name) if pattern.startswith("|1|") else pattern_matches(pattern, name)
        if matched and negated:
            return False
        found = found or matched
    return found


def decide(
    offered: str,
    listed: frozenset[str],
    trust: Trust,
    revoked: frozenset[str] = frozenset(),
    cert_authority: bool = False,
) -> Decision:
    """``offered``: the server key's fingerprint; ``listed``: fingerprints known_hosts holds for this host
    and key type (empty when unlisted); ``revoked``: fingerprints a ``@revoked`` line names for this
    host, refused whatever else says yes (a pin, TOFU, a listing); ``cert_authority``: a
    ``@cert-authority`` line names the host (it changes nothing but the refusal's words)."""
    if offered in revoked:
        return Decision(Verdict.REFUSED, f"offers {offered}, which known_hosts marks @revoked")
    if trust.pinned is not None and offered != trust.pinned:
        return Decision(Verdict.REFUSED, f"offers {offered}, but --host-key is {trust.pinned}")
    if listed:
        if offered in listed:
            return Decision(Verdict.KNOWN)
        return Decision(
            Verdict.REFUSED,
            f"offers {offered}, but known_hosts lists {', '.join(sorted(listed))} (host key changed? "
            "verify it out of band, then remove the old line)",
        )
    if trust.pinned is not None:
        return Decision(Verdict.PINNED)
    if trust.accept_new:
        return Decision(Verdict.TOFU)
    return Decision(
        Verdict.REFUSED,
        f"is not in known_hosts; it offers {offered}: verify it on the host (ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub) and pass --host-key, or --accept-new-host-key to trust it as shown"
        + (CA_NOTE if cert_authority else ""),
    )
