"""Numbers read from text someone else wrote: ASCII digits only, bounded. Pure; imports nothing.

``str.isdigit()`` is true for ``"²"`` and ``"١٢"``: ``int()`` then raises on the first (an uncaught
``ValueError`` where a check was meant: one Consul service named ``meshop-n1-web-²`` failed every
controller pass) and quietly accepts the second. ``int()`` alone also accepts ``" 1"``, ``"+1"``,
``"-0"`` and ``"1_0"``, and spends quadratic time on (or, past 4,300 digits, refuses) a huge string.
Every place that turns outside text (a Consul service or check id, a listen address, a port, a pid on a
command line) into a number goes through ``parse_uint`` / ``parse_port``: ``[0-9]+`` and nothing else,
at most 19 of them, so ``int()`` only ever sees a short ASCII numeral.
"""

from __future__ import annotations

PORT_MAX = 65535
MAX_DIGITS = 19  # enough for any 63-bit count, index or id; longer text is refused before int()


def parse_uint(text: object, *, limit: int) -> int | None:
    """``text`` as an integer in ``0..limit`` when it is ASCII digits only, else None (never raises)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_DIGITS:
        return None
    if not (text.isascii() and text.isdigit()):  # ASCII and isdigit: exactly 0-9
        return None
    value = int(text)
    return value if value <= limit else None


def parse_port(text: object, *, zero: bool = False) -> int | None:
    """A TCP/UDP port ``1..65535`` (``0..65535`` with ``zero``: "any free port") from ASCII digits, else None."""
    value = parse_uint(text, limit=PORT_MAX)
    if value is None or (value == 0 and not zero):
        return None
    return value
