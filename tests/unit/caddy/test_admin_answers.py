"""Reading Caddy's /load answer: a 200 that carries an error is a refusal (Caddy 2.6.2)."""

from __future__ import annotations

import pytest

from meshop.caddy.admin import _error_after_warnings

WARNING = b'[{"file":"Caddyfile","line":2,"message":"Caddyfile input is not formatted"}]'
ERROR = b'{"error":"loading config: listen tcp 127.0.0.1:443: bind: address already in use"}\n'


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b"", None),
        (WARNING, None),  # warnings alone: the config was taken
        (WARNING + ERROR, "loading config: listen tcp 127.0.0.1:443: bind: address already in use"),
        (ERROR, "loading config: listen tcp 127.0.0.1:443: bind: address already in use"),
        (b'{"error":""}', "refused (no message)"),
        (b'{"error":"a\\n\\tb"}', "a b"),  # one line, whatever Caddy put in it
        (b"<html>not json</html>", None),
        (WARNING + b"garbage", None),
        (b'{"error":"' + b"x" * 5000 + b'"}', "x" * 1000),  # bounded
    ],
)
def test_a_200_answer_is_a_refusal_only_when_it_carries_an_error(body: bytes, refusal: str | None) -> None:
    assert _error_after_warnings(body) == refusal
