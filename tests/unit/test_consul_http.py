"""``meshop.consul.http.parse_answer``: what counts as a whole HTTP answer (the socket path's only parser)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from meshop.consul import http as consul_http
from meshop.consul.config import ConsulConfig
from meshop.consul.http import HTTPKV, parse_answer
from meshop.errors import ConsulAccessDenied, ConsulUnavailable

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
        (OK_HEAD + b"Content-Length: \xb2\r\n\r\ntrue", None),  # latin-1 superscript two: isdigit(), not int()
        (b"HTTP/1.0 \xb2\xb2\xb2 OK\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n", None),
        (b"HTTP/1.0 " + b"2" * 4301 + b" OK\r\n\r\n", None),  # int() raised ValueError past 4,300 digits
        (OK_HEAD + b"Content-Length: " + b"9" * 4301 + b"\r\n\r\ntrue", None),
        (b"HTTP/1.0 2000 OK\r\n\r\n", None),  # a status has three digits
        (OK_HEAD + b"Content-Length: 0004\r\n\r\ntrue", (200, b"true")),
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
        "superscript-length",
        "superscript-status",
        "negative-chunk",
        "4300-digit-status",
        "4300-digit-length",
        "four-digit-status",
        "leading-zeros",
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
    with pytest.raises(ConsulAccessDenied, match="line break, control or non-ASCII character"):
        kv.get("meshop/k", "reading meshop/k")


@contextlib.contextmanager
def hostile_server(send: Callable[[socket.socket, threading.Event], None]) -> Iterator[int]:
    """A loopback listener that answers one connection with ``send`` (until the test is done)."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            send(conn, done)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(10)
        listener.close()


def _trickle(conn: socket.socket, done: threading.Event) -> None:
    conn.sendall(b"HTTP/1.0 200 OK\r\n")
    for _ in range(100):  # a header byte now and then for 10 s: each recv() succeeds in time
        if done.wait(0.1):
            return
        conn.sendall(b"X")


def _flood(conn: socket.socket, done: threading.Event) -> None:
    conn.sendall(OK_HEAD + b"\r\n")
    junk = b"x" * 65536
    for _ in range(64):  # 4 MiB, then the close
        if done.is_set():
            return
        conn.sendall(junk)


def test_a_server_that_trickles_bytes_cannot_hold_the_cli() -> None:
    """Before: the socket timeout was per recv(), so an answer that never ends never timed out."""
    with hostile_server(_trickle) as port:
        started = time.monotonic()
        with pytest.raises(ConsulUnavailable, match="timed out"):
            HTTPKV(ConsulConfig(port=port, timeout=0.5)).get("meshop/k", "reading meshop/k")
        assert time.monotonic() - started < 5


def test_an_endless_answer_is_cut_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every byte was kept until the server closed (memory without bound)."""
    monkeypatch.setattr(consul_http, "MAX_ANSWER", 2**20)
    with hostile_server(_flood) as port, pytest.raises(ConsulUnavailable, match="exceeds 1048576 bytes"):
        HTTPKV(ConsulConfig(port=port, timeout=20)).get("meshop/k", "reading meshop/k")


def test_a_token_outside_ascii_is_refused_not_a_traceback() -> None:
    kv = HTTPKV(ConsulConfig(port=1, token="t\u20ac"))  # printable, but no latin-1 for the header
    with pytest.raises(ConsulAccessDenied, match="line break, control or non-ASCII character"):
        kv.get("meshop/k", "reading meshop/k")
