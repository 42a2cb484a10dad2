"""Text from KV never drives the operator's terminal: control characters are shown as escapes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.cli import safe
from meshop.cli.render import cells, event_line
from meshop.cli.safe import printable
from meshop.client.events import LoggedEvent
from meshop.model.records import Event


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain text [bold]", "plain text [bold]", id="plain-and-brackets-untouched"),
        pytest.param("\x1b[2J\x1b[Hfake", "\\x1b[2J\\x1b[Hfake", id="clear-screen"),
        pytest.param("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07", id="window-title"),
        pytest.param("\x9b31m", "\\x9b31m", id="c1-csi"),
        pytest.param("ok\rFAKE", "ok\\x0dFAKE", id="carriage-return-overwrite"),
        pytest.param("a\nb\tc", "a\\x0ab\\x09c", id="newline-and-tab-in-a-cell"),
        pytest.param("evil\u202etxt.exe", "evil\\u202etxt.exe", id="bidi-override"),
        pytest.param("caf\u00e9 \u2713", "caf\u00e9 \u2713", id="ordinary-unicode-kept"),
    ],
)
def test_printable(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_multiline_keeps_newlines_only() -> None:
    assert printable("a\nb\x1b[1A", multiline=True) == "a\nb\\x1b[1A"


@given(st.text())
def test_nothing_a_terminal_obeys_survives(text: str) -> None:
    out = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in out)


def test_every_escaped_character_is_unprintable_to_python() -> None:
    """``printable`` returns text that ``str.isprintable()`` without looking further: that is exact only
    while every character its patterns escape is one Python calls unprintable."""
    pattern = re.compile(safe._ONE_LINE)
    escaped = [chr(code) for code in range(0x10000) if pattern.fullmatch(chr(code))]
    assert len(escaped) > 70 and not [c for c in escaped if c.isprintable()]


@given(st.text(), st.booleans())
def test_the_shortcut_changes_nothing(text: str, multiline: bool) -> None:
    pattern = re.compile(safe._MULTILINE if multiline else safe._ONE_LINE)
    assert printable(text, multiline) == pattern.sub(safe._escape, text)


def test_table_cells_and_event_lines_are_escaped() -> None:
    assert [c.plain for c in cells("web\x1b[31m", 3)] == ["web\\x1b[31m", "3"]
    event = Event(1.0, "Invalid\x1b[8m", "service/x\x07", "hidden\x1b]8;;http://evil\x1b\\link", "ctl\r")
    line = event_line(LoggedEvent("events/1", event))
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line
    assert "\\x1b]8;;http://evil" in line
