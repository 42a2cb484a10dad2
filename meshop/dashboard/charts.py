"""Inline SVG sparklines, rendered on the server: numbers in, markup out. Pure.

No script and no library: the page's Content-Security-Policy stays as strict as it is (SVG presentation
attributes are not inline styles). The only text is the label, escaped; every coordinate is a number
formatted here. The x axis is the time window (the last hour): a node whose agent stopped draws a line
that ends early, never one that drops to zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from meshop.dashboard.html import esc

WIDTH, HEIGHT = 160, 32


def sparkline(points: Sequence[tuple[float, float]], start: float, end: float, label: str, top: float = 0.0) -> str:
    """``points`` (time, value) between ``start`` and ``end`` as a line; ``top`` the value at the chart's
    top (0: the largest value shown). Fewer than one point in the window: an empty chart."""
    shown = [(t, v) for t, v in points if start <= t <= end and math.isfinite(v) and v >= 0]
    span = end - start
    ceiling = max(top, max((v for _, v in shown), default=0.0)) or 1.0
    marks = ""
    if shown and span > 0:
        coords = [
            (2 + (t - start) / span * (WIDTH - 4), HEIGHT - 2 - min(v / ceiling, 1.0) * (HEIGHT - 4)) for t, v in shown
        ]
        if len(coords) == 1:
            coords.append((WIDTH - 2, coords[0][1]))  # one sample: a level line to now
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        marks = f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{text}"/>'
        x, y = coords[-1] if len(shown) > 1 else coords[0]
        marks += f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="currentColor"/>'
    return (
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'data-samples="{len(shown)}" aria-label="{esc(label)}"><title>{esc(label)}</title>'
        f'<line x1="0" y1="{HEIGHT - 1}" x2="{WIDTH}" y2="{HEIGHT - 1}" stroke="currentColor" stroke-opacity="0.2"/>'
        f"{marks}</svg>"
    )
