"""The steps a bootstrap plan is made of, and how each is shown. Pure.

Every step is idempotent by construction: it has a *check* that says "already done" and an *apply* that
does it. The executor runs the check first, skips the step when it passes, applies it otherwise and then
checks again, so a plan can be re-run after any failure and a second run changes nothing.

* ``File``: a file with exact bytes and mode (done when its sha256 and mode match).
* ``Packages``: Debian packages (done when every one is installed, or when ``unless`` holds).
* ``Command``: a shell command with its own check.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass

REDACTED = "<redacted>"
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class File:
    path: str
    content: bytes
    mode: int = 0o644
    secrets: tuple[str, ...] = ()  # values shown as <redacted> by ``show`` (tokens, the gossip key)

    @property
    def title(self) -> str:
        return f"file {self.path} (mode {self.mode:04o})"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def check(self) -> str:
        p = shlex.quote(self.path)
        found = f"$(sha256sum {p} 2>/dev/null | cut -d' ' -f1):$(stat -c %a {p} 2>/dev/null)"
        return f'[ "{found}" = {self.sha256}:{self.mode:o} ]'


@dataclass(frozen=True)
class Packages:
    names: tuple[str, ...]
    unless: str = ""  # a shell test: when it passes the packages are not needed (e.g. an engine already runs)
    why: str = ""

    @property
    def title(self) -> str:
        return f"packages {' '.join(self.names)}" + (f" ({self.why})" if self.why else "")

    @property
    def check(self) -> str:
        names = " ".join(shlex.quote(n) for n in self.names)
        count = f"$(dpkg-query -W -f='${{db:Status-Abbrev}}\\n' {names} 2>/dev/null | grep -c '^ii')"
        installed = f'[ "{count}" = {len(self.names)} ]'
        return f"{{ {self.unless}; }} || {installed}" if self.unless else installed

    @property
    def apply(self) -> str:
        names = " ".join(shlex.quote(n) for n in self.names)
        env = "DEBIAN_FRONTEND=noninteractive"
        return f"{env} apt-get update -q && {env} apt-get install -y -q --no-install-recommends {names}"


@dataclass(frozen=True)
class Command:
    name: str
    check: str
    apply: str
    after_change: tuple[str, ...] = ()  # files: when one of them was written in this run, apply even if checked
    changes: bool = True  # False: apply only waits for the check (a readiness step), it changes nothing

    @property
    def title(self) -> str:
        return self.name


Step = File | Packages | Command


def show(step: Step) -> str:
    """What ``--dry-run`` prints for a step: its title, its check and apply, a file's whole text (secret
    values redacted; a binary or large file by size and sha256)."""
    if isinstance(step, File):
        try:
            text: str | None = step.content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _BINARY.search(text):
            text = None
        if text is None or len(step.content) > 16384:
            return f"{step.title}: {len(step.content)} bytes, sha256 {step.sha256}"
        for secret in step.secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        body = "".join(f"    | {line}\n" for line in text.splitlines())
        return f"{step.title}:\n{body}".rstrip("\n")
    if isinstance(step, Packages):
        return f"{step.title}\n    check: {step.check}\n    apply: {step.apply}"
    after = f"\n    also after a change of: {', '.join(step.after_change)}" if step.after_change else ""
    return f"{step.title}\n    check: {step.check}\n    apply: {step.apply}{after}"
