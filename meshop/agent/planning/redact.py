"""Keeping secret values out of every error text the agent passes on (notes, logs, observed state); pure.

Docker and runc quote what they refuse: a value with a NUL byte comes back as ``"PW=abc\\x00def"`` in
Go's ``%q`` form, and error texts are later folded onto one line and shortened. So ``redact`` replaces
every form a value may take there (as is, Go-quoted, JSON-escaped, whitespace-folded, and each of its
lines) and anything that follows ``NAME=`` for a secret env name, in one pass, before any shortening.
``env_problem`` names values that no process environment can carry, so they never reach Docker at all.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping

REDACTED = "<redacted>"
MIN_LINE = 4  # lines of a multi-line secret shorter than this are too common to hunt for on their own

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quoted(value: str) -> str:
    """The inside of Go's ``strconv.Quote(value)``: how Docker and runc echo a string in an error."""
    out = []
    for ch in value:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) > 0x7E and not ch.isprintable() and unicodedata.category(ch) != "Zs":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def forms(value: str) -> set[str]:
    """Every way ``value`` may show up in an error text."""
    found = {
        value,
        go_quoted(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        " ".join(value.split()),
    }
    found.update(line.strip() for line in re.split(r"[\r\n\x00]+", value) if len(line.strip()) >= MIN_LINE)
    return {f for f in found if f}


class Redactor:
    """``Redactor(secrets)(text)``: ``text`` with every form of every value of ``secrets`` (env name ->
    value) replaced by ``<redacted>``, and whatever follows ``NAME=`` for those names up to a quote."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        patterns = sorted({f for value in secrets.values() for f in forms(value)}, key=len, reverse=True)
        names = sorted(secrets, key=len, reverse=True)
        alternatives = [re.escape(p) for p in patterns]
        alternatives += [rf"(?<![A-Za-z0-9_]){re.escape(n)}=[^\"'\n]*" for n in names]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None
        self._names = tuple(names)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(0)
        for name in self._names:
            if found.startswith(name + "="):
                return f"{name}={REDACTED}"
        return REDACTED


def redact(text: str, secrets: Mapping[str, str]) -> str:
    return Redactor(secrets)(text)


def env_problem(value: str) -> str | None:
    """Why ``value`` cannot be an environment variable's value (never quoting it), or None."""
    if "\x00" in value:
        return "holds a NUL byte, which no process environment can carry"
    return None


def secret_env(env: Iterable[str], names: Iterable[str]) -> dict[str, str]:
    """``NAME=value`` entries -> {NAME: value} for the secret ``names`` only."""
    wanted = set(names)
    out: dict[str, str] = {}
    for entry in env:
        name, _, value = entry.partition("=")
        if name in wanted:
            out[name] = value
    return out
