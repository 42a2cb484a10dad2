"""Dotted paths for violations: ``spec.ports[0].container``, ``metadata.labels["app.io/x"]``."""

from __future__ import annotations

import re
from collections.abc import Iterable

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*", re.ASCII)


def join(parts: Iterable[object]) -> str:
    """Render path parts; odd keys are JSON-quoted so a newline or dot in a key stays unambiguous."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _IDENT.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            import json  # only an odd key needs it (start-up time)

            out.append(f"[{json.dumps(str(part))[:80]}]")
    return "".join(out)


def child(path: str, key: object) -> str:
    """Extend an already rendered path by one key or index."""
    if not path:
        return join([key])
    return path + join(["_", key])[1:]
