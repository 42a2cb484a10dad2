"""Consul's KV and transaction API over a plain socket: the CLI's short path to Consul.

``meshop apply`` needs one KV read and one transaction; py-consul brings ``requests``, ``urllib3``,
``idna`` and ``charset_normalizer`` along (a third of the command's start-up), and even the standard
library's ``http.client`` loads the ``email`` package and ``ssl``. ``HTTPKV`` speaks HTTP/1.0 over a
socket, one connection per request (the server closes it after the answer: no chunked bodies, no
kept-alive connection to find dead), from the same ``ConsulConfig`` as py-consul: address and scheme,
the ACL token on every request (as a header, never in the URL), TLS (``ssl`` loaded only then) with
``CONSUL_CACERT`` / client certificate / ``CONSUL_HTTP_SSL_VERIFY``, the timeout (plus the wait of a
blocking query, as py-consul does), consistent reads; and it turns failures into the same meshop
errors, with the same messages, as ``client.consul_errors``.

``KVStore`` uses it through the same small interface as ``client.ClientKV`` (py-consul); the daemons
keep py-consul, whose sessions, catalog and health calls they need anyway.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from typing import Any
from urllib.parse import quote, urlencode

from meshop.consul.config import ConsulConfig
from meshop.errors import ConflictError, ConsulAccessDenied, ConsulError, ConsulUnavailable, ValueTooLarge
from meshop.model.digits import parse_uint

TOKEN_HEADER = "X-Consul-Token"
MAX_ANSWER = 256 * 2**20  # far above any KV listing meshop reads; an endless answer must not eat memory
MAX_LENGTH = 10**18 - 1  # a larger Content-Length or index is no answer meshop reads (MAX_ANSWER has 9 digits)
Params = list[tuple[str, str]]


def index_header(value: object) -> int:
    """A blocking query's ``X-Consul-Index`` (text, as both clients get it): at most 18 ASCII digits, else
    0 (a query that does not block). Never ``int()`` of the header: a 4,301-digit one raised ValueError,
    an internal error of the CLI (issue 24)."""
    return parse_uint(value, limit=MAX_LENGTH) or 0


class HTTPKV:
    """The KV primitives ``KVStore`` needs; each call is one request on its own connection."""

    def __init__(self, config: ConsulConfig) -> None:
        self.config = config

    def get(
        self,
        full: str,
        what: str,
        *,
        recurse: bool = False,
        keys: bool = False,
        index: int | None = None,
        wait: str | None = None,
        stale: bool = False,
    ) -> tuple[int, Any]:
        """(X-Consul-Index, the decoded answer): one entry (Value as bytes), a list of entries
        (``recurse``), a list of key names (``keys``), or None when nothing is there. ``stale``: answered
        by whichever server the agent asks, without the Raft leader (see ``KVStore.get_blocking``)."""
        params: Params = [("stale", "1")] if stale else [("consistent", "1")]
        if recurse:
            params.append(("recurse", "1"))
        if keys:
            params.append(("keys", "1"))
        if index:
            params.append(("index", str(index)))
            if wait:
                params.append(("wait", wait))
        answer = self._call("GET", _kv_path(full), params, None, what, _seconds(wait) if index else 0.0)
        consul_index = index_header(answer.headers.get("x-consul-index", ""))
        if answer.status == 404:
            return consul_index, None
        data = _json(answer.body, what, self.config)
        if keys:
            return consul_index, data
        entries = [_decoded(item) for item in data or ()]
        return consul_index, (entries if recurse else (entries[0] if entries else None))

    def put(self, full: str, data: bytes, what: str, *, cas: int | None = None) -> bool:
        params: Params = [] if cas is None else [("cas", str(cas))]
        answer = self._call("PUT", _kv_path(full), params, data, what)
        return _json(answer.body, what, self.config) is True

    def delete(self, full: str, what: str, *, cas: int | None = None, recurse: bool = False) -> bool:
        params: Params = [("recurse", "1")] if recurse else []
        if cas is not None:
            params.append(("cas", str(cas)))
        answer = self._call("DELETE", _kv_path(full), params, None, what)
        return _json(answer.body, what, self.config) is True

    def txn(self, body: str, what: str, *, consistent: bool = False) -> tuple[int, str]:
        """(status, response text) of a transaction: 200 (done, results) or 409 (rolled back, errors)."""
        params: Params = [("consistent", "1")] if consistent else []
        answer = self._call("PUT", "/v1/txn", params, body.encode("utf-8"), what, allow=(409,))
        return answer.status, answer.body.decode("utf-8", errors="replace")

    def _call(
        self,
        method: str,
        path: str,
        params: Params,
        body: bytes | None,
        what: str,
        wait: float = 0.0,
        allow: tuple[int, ...] = (),
    ) -> Answer:
        """One request; returns the answer for 2xx, 404 and ``allow``, raises for the rest."""
        config = self.config
        head = [f"{method} {path}?{urlencode(params)}" if params else f"{method} {path}"]
        head[0] += " HTTP/1.0"
        head.append(
            f"Host: [{config.host}]:{config.port}" if ":" in config.host else f"Host: {config.host}:{config.port}"
        )
        if config.token:
            if not (config.token.isascii() and config.token.isprintable()):  # a line break would end the header
                raise ConsulAccessDenied("the Consul ACL token holds a line break, control or non-ASCII character")
            head.append(f"{TOKEN_HEADER}: {config.token}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        timeout = config.timeout + wait + wait / 16  # a blocking query answers after up to wait + wait/16
        tls_errors: tuple[type[BaseException], ...] = ()
        try:
            with socket.create_connection((config.host, config.port), timeout=timeout) as raw:
                if config.scheme == "https":
                    import ssl  # here: a plain-HTTP Consul (the usual loopback agent) never pays for it

                    tls_errors = (ssl.SSLError, ssl.CertificateError)
                    with tls_context(config).wrap_socket(raw, server_hostname=config.host) as sock:
                        data = _exchange(sock, request, timeout)
                else:
                    data = _exchange(raw, request, timeout)
        except TimeoutError:
            raise _unavailable(config, what, "timed out") from None
        except AnswerTooLarge:
            too_large = f"the answer exceeds {MAX_ANSWER} bytes"
            raise ConsulUnavailable(f"Consul at {config.address} failed {what}: {too_large}") from None
        except OSError as exc:
            if isinstance(exc, tls_errors):
                raise ConsulUnavailable(f"Consul at {config.address} failed {what}: TLS: {_short(exc)}") from None
            raise _unavailable(config, what, "unreachable") from None
        answer = parse_answer(data)
        if answer is None:
            raise ConsulUnavailable(f"Consul at {config.address} failed {what}: not an HTTP answer")
        if 200 <= answer.status < 300 or answer.status == 404 or answer.status in allow:
            return answer
        raise _error(config, what, answer.status, answer.body.decode("utf-8", errors="replace"))


class Answer:
    """An HTTP answer: status, headers (names in lower case), body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class AnswerTooLarge(Exception):
    """The server sent more than ``MAX_ANSWER`` bytes."""


def _exchange(sock: socket.socket, request: bytes, timeout: float) -> bytes:
    """Send ``request``, read the answer until the server closes the connection (HTTP/1.0): within
    ``timeout`` in all (the socket's own timeout is per call: a server sending a byte now and then would
    hold it forever) and at most ``MAX_ANSWER`` bytes."""
    deadline = time.monotonic() + timeout
    sock.sendall(request)
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER:
            raise AnswerTooLarge
        chunks.append(chunk)


def parse_answer(data: bytes) -> Answer | None:
    """The answer in ``data`` (a whole HTTP/1.x response), or None when it is not one. A body longer
    than its Content-Length is cut there; a shorter one, or chunked one cut short, is not an answer."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = parse_uint(parts[1], limit=999) if len(parts) >= 2 and len(parts[1]) == 3 else None
    if not sep or status is None or not parts[0].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        decoded = _unchunked(body)
        if decoded is None:
            return None
        body = decoded
    elif "content-length" in headers:
        length = parse_uint(headers["content-length"], limit=MAX_LENGTH)
        if length is None or len(body) < length:
            return None
        body = body[:length]
    return Answer(status, headers, body)


def _unchunked(data: bytes) -> bytes | None:
    out, at = [], 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        size_text = data[at:end].split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
            return None
        size = int(size_text, 16)
        if size == 0:
            return b"".join(out)
        start = end + 2
        if len(data) < start + size + 2:
            return None
        out.append(data[start : start + size])
        at = start + size + 2


def tls_context(config: ConsulConfig) -> Any:
    """The TLS settings py-consul (requests) would use: system CAs or ``ca_file``, the client
    certificate, and no verification only when ``CONSUL_HTTP_SSL_VERIFY`` says so."""
    import ssl  # here: plain-HTTP Consul (the usual loopback agent) never pays for it

    context = ssl.create_default_context(cafile=config.ca_file if config.verify else None)
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


def _kv_path(full: str) -> str:
    return "/v1/kv/" + quote(full, safe="/")


def _seconds(wait: str | None) -> float:
    """A Consul duration as py-consul reads it for its timeout: ``30s``, ``2m``, ``500ms``; else 0."""
    if not wait:
        return 0.0
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if wait.endswith(unit):
            try:
                return float(wait[: -len(unit)]) * factor
            except ValueError:
                return 0.0
    return 0.0


def _decoded(item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("Value")
    return {**item, "Value": base64.b64decode(value) if value else None}


def _json(body: bytes, what: str, config: ConsulConfig) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise ConsulError(f"Consul at {config.address} failed {what}: the answer is not JSON") from None


def _unavailable(config: ConsulConfig, what: str, kind: str) -> ConsulUnavailable:
    return ConsulUnavailable(
        f"Consul at {config.address} is {kind} ({what}); start it or set CONSUL_HTTP_ADDR / --consul-addr"
    )


def _error(config: ConsulConfig, what: str, status: int, text: str) -> ConsulError:
    """The error ``client.consul_errors`` makes of py-consul's exception for the same answer."""
    if status == 403:
        return ConsulAccessDenied(
            f"Consul at {config.address} denied {what}: ACL permission denied; "
            f"set CONSUL_HTTP_TOKEN / --token to a token with access ({_short(text)})"
        )
    if status == 401:
        return ConsulAccessDenied(f"Consul at {config.address} refused {what}: {_short(text)}")
    message = _short(f"{status} {text}")
    if status == 413 or "too large" in message.lower():
        return ValueTooLarge(f"Consul refused {what}: {message}")
    if status == 409:
        return ConflictError(f"{what} lost against a concurrent writer: {message}")
    return ConsulError(f"Consul at {config.address} failed {what}: {message}")


def _short(exc: object) -> str:
    return " ".join(str(exc).split())[:300]
