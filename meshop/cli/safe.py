"""Terminal hygiene: text that came from KV (documents, records, events) is shown, never obeyed. Pure.

Anyone who can write a desired document, a node record or an event chooses the bytes ``meshop status``,
``describe`` and ``events`` print. A raw ESC (``\\x1b``) would let them move the cursor, rewrite earlier
lines, retitle the window or (on some terminals) make links and answer-back sequences; bidi overrides
reorder what the operator reads. Every such character is printed as a visible escape (``\\x1b``,
``\\u202e``) instead. Tables are single-line per cell, so newlines and tabs are escaped there too.
"""

from __future__ import annotations

import re

# C0 controls but \t and \n, DEL, C1 controls, and the Unicode format characters that reorder or hide text
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_MULTILINE = f"[{_UNSAFE}]"
_ONE_LINE = f"[{_UNSAFE}\t\n]"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, multiline: bool = False) -> str:
    """``text`` with every control or reordering character shown as an escape; newlines kept when
    ``multiline``."""
    text = str(text)
    # every character escaped here is unprintable to Python (Cc, Cf, Zl, Zp): plain text needs no pattern
    if (text.replace("\n", "").replace("\t", "") if multiline else text).isprintable():
        return text
    # patterns compiled on first use (``re`` keeps them): most text has nothing to escape
    return re.sub(_MULTILINE if multiline else _ONE_LINE, _escape, text)


# ESC-introduced sequences: CSI (colours, cursor moves), OSC (titles, links; ends with BEL or ST), DCS/SOS/PM/APC
# strings, and two-character escapes; C1 CSI/OSC forms too.
_SEQUENCES = (
    r"(\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(\x07|\x1b\\|\x9c|$)"
    r"|\x1b[ -/]*[0-~]"
)


def strip_terminal(text: str) -> str:
    """Container output made safe for a terminal: escape sequences removed, every other control or
    reordering character shown as an escape (one line: ``\\r`` and tabs too). For ``meshop logs``."""
    return printable(re.sub(_SEQUENCES, "", text, flags=re.DOTALL))
