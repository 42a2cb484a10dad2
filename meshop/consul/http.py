"""Consul's KV and transaction API over the standard library's ``http.client``: the CLI's short path.

``meshop apply`` needs one KV read and one transaction; py-consul brings ``requests``, ``urllib3``,
``idna`` and ``charset_normalizer`` along, about a third of the command's start-up. ``HTTPKV`` speaks
the same HTTP from the same ``ConsulConfig``: address and scheme, the ACL token on every request (as a
header, never in the URL), TLS with ``CONSUL_CACERT`` / client certificate / ``CONSUL_HTTP_SSL_VERIFY``,
the timeout (plus the wait of a blocking query, as py-consul does), consistent reads; and it turns
failures into the same meshop errors, with the same messages, as ``client.consul_errors``.

``KVStore`` uses it through the same small interface as ``client.ClientKV`` (py-consul); the daemons
keep py-consul, whose sessions, catalog and health calls they need anyway. Not thread-safe: one
connection, kept alive, reopened when the server has closed it.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
from typing import Any
from urllib.parse import quote, urlencode

from meshop.consul.config import ConsulConfig
from meshop.errors import ConflictError, ConsulAccessDenied, ConsulError, ConsulUnavailable, ValueTooLarge

TOKEN_HEADER = "X-Consul-Token"
Params = list[tuple[str, str]]


class HTTPKV:
    """The KV primitives ``KVStore`` needs, over one kept-alive connection."""

    def __init__(self, config: ConsulConfig) -> None:
        self.config = config
        self._conn: http.client.HTTPConnection | None = None

    def get(
        self,
        full: str,
        what: str,
        *,
        recurse: bool = False,
        keys: bool = False,
        index: int | None = None,
        wait: str | None = None,
    ) -> tuple[int, Any]:
        """(X-Consul-Index, the decoded answer): one entry (Value as bytes), a list of entries
        (``recurse``), a list of key names (``keys``), or None when nothing is there."""
        params: Params = [("consistent", "1")]
        if recurse:
            params.append(("recurse", "1"))
        if keys:
            params.append(("keys", "1"))
        if index:
            params.append(("index", str(index)))
            if wait:
                params.append(("wait", wait))
        status, headers, body = self._call("GET", _kv_path(full), params, None, what, _seconds(wait) if index else 0.0)
        consul_index = int(headers.get("X-Consul-Index") or 0)
        if status == 404:
            return consul_index, None
        data = _json(body, what, self.config)
        if keys:
            return consul_index, data
        entries = [_decoded(item) for item in data or ()]
        return consul_index, (entries if recurse else (entries[0] if entries else None))

    def put(self, full: str, data: bytes, what: str, *, cas: int | None = None) -> bool:
        params: Params = [] if cas is None else [("cas", str(cas))]
        _, _, body = self._call("PUT", _kv_path(full), params, data, what)
        return _json(body, what, self.config) is True

    def delete(self, full: str, what: str, *, cas: int | None = None, recurse: bool = False) -> bool:
        params: Params = [("recurse", "1")] if recurse else []
        if cas is not None:
            params.append(("cas", str(cas)))
        _, _, body = self._call("DELETE", _kv_path(full), params, None, what)
        return _json(body, what, self.config) is True

    def txn(self, body: str, what: str, *, consistent: bool = False) -> tuple[int, str]:
        """(status, response text) of a transaction: 200 (done, results) or 409 (rolled back, errors)."""
        params: Params = [("consistent", "1")] if consistent else []
        status, _, answer = self._call("PUT", "/v1/txn", params, body.encode("utf-8"), what, allow=(409,))
        return status, answer.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(
        self,
        method: str,
        path: str,
        params: Params,
        body: bytes | None,
        what: str,
        wait: float = 0.0,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request; returns (status, headers, body) for 2xx, 404 and ``allow``, raises for the rest."""
        config = self.config
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if config.token:
            headers[TOKEN_HEADER] = config.token
        url = f"{path}?{urlencode(params)}" if params else path
        timeout = config.timeout + wait + wait / 16  # a blocking query answers after up to wait + wait/16
        try:
            conn = self._connection(timeout)
            conn.request(method, url, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
        except TimeoutError:
            self.close()
            raise _unavailable(config, what, "timed out") from None
        except _ssl_errors() as exc:
            self.close()
            raise ConsulUnavailable(f"Consul at {config.address} failed {what}: TLS: {_short(exc)}") from None
        except (OSError, http.client.HTTPException):
            self.close()
            raise _unavailable(config, what, "unreachable") from None
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300 or status == 404 or status in allow:
            return status, response.headers, answer
        raise _error(config, what, status, answer.decode("utf-8", errors="replace"))

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            self.close()  # the server closed the kept-alive connection: a fresh one, as urllib3 does
            conn = None
        if conn is None:
            config = self.config
            if config.scheme == "https":
                conn = http.client.HTTPSConnection(
                    config.host, config.port, timeout=timeout, context=tls_context(config)
                )
            else:
                conn = http.client.HTTPConnection(config.host, config.port, timeout=timeout)
            self._conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn


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


def _ssl_errors() -> tuple[type[BaseException], ...]:
    import sys

    ssl = sys.modules.get("ssl")  # loaded only when a TLS connection was made
    return (ssl.SSLError, ssl.CertificateError) if ssl is not None else ()


def _dropped(sock: socket.socket) -> bool:
    """True when the idle connection has something to read: the server's close (or garbage)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


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
