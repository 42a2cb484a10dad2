"""HTML escaping for everything that came from Consul (documents, records, events: hostile input). Pure.

``esc`` escapes ``& < > " '`` (so a value is inert both in text and in a quoted attribute) and shows
control and text-reordering characters (bidi overrides, zero-width) as visible escapes, as the CLI's
``printable`` does for terminals: a name must not be able to look like another one.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def esc(value: object) -> str:
    """``value`` as inert HTML text (also safe inside a double- or single-quoted attribute)."""
    return html.escape(_UNSAFE.sub(_visible, str(value)), quote=True)


def url_part(value: object) -> str:
    """One path segment of a URL (``/service/<name>``), percent-encoded, then HTML-escaped."""
    return esc(quote(str(value), safe=""))


def tag(name: str, text: object, cls: str = "") -> str:
    """``<name class="cls">text</name>`` with ``text`` escaped; ``cls`` is ours, never from Consul."""
    attr = f' class="{cls}"' if cls else ""
    return f"<{name}{attr}>{esc(text)}</{name}>"
