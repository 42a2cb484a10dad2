"""Durations and memory quantities, the two unit-bearing scalars of a document."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_MEMORY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?", re.ASCII)
_MEMORY_UNITS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
MAX_DURATION = 7 * 24 * 3600.0  # one week


class OutOfRange(ValueError):
    """Well-formed, but outside what meshop accepts (a negative number, a week or more, 1 PiB...)."""


MAX_MEMORY = 2**50


def parse_duration(text: object) -> float:
    """Go-style duration (``500ms``, ``10s``, ``1m30s``) or a number of seconds, as float seconds.

    Raises ValueError for malformed or out-of-range values (OutOfRange), TypeError for non-text.
    """
    if isinstance(text, bool):
        raise TypeError("not a duration")
    if isinstance(text, (int, float)):
        seconds = float(text)
    elif isinstance(text, str):
        pos, total = 0, Decimal(0)
        for m in _DURATION_PART.finditer(text[:64]):
            if m.start() != pos:
                break
            total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ValueError(f"not a duration: {text[:64]!r}")
        seconds = float(total)
    else:
        raise TypeError("not a duration")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise OutOfRange(f"duration out of range: {text!r}")
    return seconds


def parse_memory(text: object) -> int:
    """Kubernetes-style quantity (``256Mi``, ``1G``, ``1.5Gi``, ``1048576``) as whole bytes, rounded up."""
    if isinstance(text, bool):
        raise TypeError("not a memory quantity")
    if isinstance(text, int) or (isinstance(text, float) and text.is_integer()):
        value = int(text)
    elif isinstance(text, str):
        m = _MEMORY_RE.fullmatch(text) if len(text) <= 64 else None
        if m is None:
            raise ValueError(f"not a memory quantity: {text[:64]!r}")
        exact = Decimal(m.group(1)) * _MEMORY_UNITS[m.group(2)]
        value = int(exact.to_integral_value(rounding="ROUND_CEILING"))
    else:
        raise TypeError("not a memory quantity")
    if value < 0 or value > MAX_MEMORY:
        raise OutOfRange(f"memory out of range: {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """Short human form for messages (``10s``, ``1.5s``, ``250ms``); not used for storage."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
