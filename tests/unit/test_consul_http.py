"""``meshop.consul.http.parse_answer``: what counts as a whole HTTP answer (the socket path's only parser)."""

from __future__ import annotations

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.http import HTTPKV, parse_answer
from meshop.errors import ConsulAccessDenied

OK_HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 12\r\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (OK_HEAD + b"Content-Length: 4\r\n\r\ntrue", (200, b"true")),
        (OK_HEAD + b"\r\n[1,2]", (200, b"[1,2]")),  # no length: the body runs to the close
        (OK_HEAD + b"Content-Length: 4\r\n\r\ntrue-and-more", (200, b"true")),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2;x=y\r\n2]\r\n0\r\n\r\n", (200, b"[1,2]")),
        (b"HTTP/1.0 404 Not Found\r\nX-Consul-Index: 3\r\n\r\n", (404, b"")),
        (b"HTTP/1.0 403 Forbidden\r\nContent-Length: 17\r\n\r\nPermission denied", (403, b"Permission denied")),
        (OK_HEAD + b"Content-Length: 10\r\n\r\ntrue", None),  # cut short
        (OK_HEAD + b"Content-Length: x\r\n\r\ntrue", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,", None),  # chunk cut short
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", None),
        (OK_HEAD + b"Content-Length: 4", None),  # no end of the head
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None),
        (b"HTTP/1.0 abc OK\r\n\r\n", None),
        (b"HTTP/1.0 200 OK\r\nno colon here\r\n\r\n", None),
        (b"", None),
    ],
    ids=[
        "content-length",
        "to-the-close",
        "longer-than-length",
        "chunked",
        "not-found",
        "denied",
        "short-body",
        "bad-length",
        "short-chunk",
        "bad-chunk-size",
        "no-blank-line",
        "not-http",
        "bad-status",
        "bad-header",
        "nothing",
    ],
)
def test_parse_answer(data: bytes, expected: tuple[int, bytes] | None) -> None:
    answer = parse_answer(data)
    assert (None if answer is None else (answer.status, answer.body)) == expected


def test_headers_are_found_whatever_their_case() -> None:
    answer = parse_answer(OK_HEAD + b"\r\n")
    assert answer is not None and answer.headers["x-consul-index"] == "12"


@pytest.mark.parametrize("token", ["abc\r\nX-Evil: 1", "abc\n", "a\x00b"], ids=["crlf", "lf", "nul"])
def test_a_token_that_would_break_the_header_is_refused_before_connecting(token: str) -> None:
    kv = HTTPKV(ConsulConfig(port=1, token=token))  # nothing listens on port 1: no request is tried
    with pytest.raises(ConsulAccessDenied, match="line break or control character"):
        kv.get("meshop/k", "reading meshop/k")
