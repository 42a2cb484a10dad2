"""Short plain-text forms shared by every view of the fleet (``meshop status``/``get`` and the
dashboard), so the terminal and the page never word the same fact differently. Pure."""

from __future__ import annotations

from collections.abc import Mapping


def age(seconds: float | None) -> str:
    """kubectl-style ages: 45s, 12m, 5h, 3d; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 2 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def placement(nodes: Mapping[str, int]) -> str:
    """``n1,n2=2``: each node with its replica count when more than one; ``-`` for none."""
    return ",".join(f"{n}={c}" if c > 1 else n for n, c in sorted(nodes.items()) if c > 0) or "-"


def labels(values: Mapping[str, str]) -> str:
    """``k=v,...`` sorted by key; ``-`` for none."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
