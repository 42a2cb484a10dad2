"""Both log formats write exactly one line per event, tracebacks and multi-line messages included."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from meshop.daemon.logs import JsonFormatter, TextFormatter


def record(msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("meshop.test", logging.ERROR, __file__, 1, msg, (), exc_info)


@pytest.mark.parametrize("exc", [False, True], ids=["message", "traceback"])
def test_text_format_is_one_line_per_event(exc: bool) -> None:
    line = TextFormatter().format(record("first\nsecond", exc))
    assert "\n" not in line and "\r" not in line
    assert "first\\nsecond" in line
    assert ("ValueError: boom\\nsecond line" in line) is exc


@pytest.mark.parametrize("exc", [False, True], ids=["message", "traceback"])
def test_json_format_is_one_object_per_line(exc: bool) -> None:
    line = JsonFormatter().format(record("first\nsecond", exc))
    assert "\n" not in line
    event = json.loads(line)
    assert event["msg"] == "first\nsecond" and event["level"] == "error" and event["logger"] == "meshop.test"
    assert ("exc" in event) is exc
