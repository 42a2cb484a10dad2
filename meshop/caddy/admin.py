"""Caddy's admin API (unix socket or loopback TCP): load a Caddyfile, read the running config.

``POST /load`` with ``Content-Type: text/caddyfile`` adapts and applies a config atomically: Caddy
answers 400 and keeps the old config serving when the new one is rejected. Caddy 2.6.2 has one
exception (upstream caddy#7175): a config that fails while *starting* (a port already in use) answers
400 but leaves a half-started server behind; ``CaddyRejected.needs_restart`` flags that case.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket

from meshop.errors import DriverError, MeshopError
from meshop.model.digits import parse_port


class CaddyRejected(DriverError):
    """Caddy refused a config; the previous one keeps serving (unless ``needs_restart``)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        self.needs_restart = "listen" in detail.lower() or "address already in use" in detail.lower()
        super().__init__(f"Caddy rejected the config: {detail}")


class CaddyUnavailable(DriverError):
    """The admin API did not answer."""


def check_admin_address(address: str) -> str:
    """``unix//path`` or a loopback ``host:port``; anything else would expose the admin API."""
    if address.startswith("unix/"):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or parse_port(port) is None:
        raise MeshopError(f"Caddy admin address {address!r} is not unix//PATH or HOST:PORT")
    host = host.strip("[]")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise MeshopError(f"Caddy admin address {address!r} must be a unix socket or on loopback")
    return address


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class CaddyAdmin:
    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = check_admin_address(address)
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.address.startswith("unix/"):
            return _UnixConnection(self.address[len("unix/") :], self.timeout)
        host, _, port = self.address.rpartition(":")
        return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        conn = self._connection()
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            if self.address.startswith("unix/"):
                headers["Host"] = ""  # Caddy accepts only an empty Host on its unix-socket admin API
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            raise CaddyUnavailable(f"Caddy admin API at {self.address} did not answer: {exc}") from None
        finally:
            conn.close()

    def load(self, caddyfile: str) -> None:
        """Apply ``caddyfile``; raises ``CaddyRejected`` with Caddy's own message on refusal."""
        status, body = self.request("POST", "/load", caddyfile.encode("utf-8"), "text/caddyfile")
        if status != 200:
            raise CaddyRejected(_error_text(body) or f"HTTP {status}")
        refusal = _error_after_warnings(body)
        if refusal is not None:
            raise CaddyRejected(refusal)

    def config(self) -> object:
        status, body = self.request("GET", "/config/")
        if status != 200:
            raise CaddyUnavailable(f"Caddy admin API at {self.address} answered {status} to GET /config/")
        return json.loads(body or b"null")

    def ready(self) -> bool:
        try:
            return self.request("GET", "/config/")[0] == 200
        except CaddyUnavailable:
            return False


def _error_after_warnings(body: bytes) -> str | None:
    """The error in a 200 answer that is not a success.

    Caddy 2.6.2 writes the Caddyfile adapter's warnings (e.g. "input is not formatted") first, which sends
    200, then the load's own error after them: ``[warnings...]{"error": "..."}`` with status 200. Only the
    body tells that the config was refused (the previous one keeps serving).
    """
    text = body.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    position = 0
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            return None  # not Caddy's JSON: nothing to read a refusal from
        if isinstance(value, dict) and "error" in value:
            return _one_line(value["error"]) or "refused (no message)"
    return None


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text)
    return _one_line(data.get("error", text)) if isinstance(data, dict) else text[:1000]


def _one_line(message: object) -> str:
    """Caddy's message on one line, bounded: it goes into logs, KV records and ``meshop status``."""
    return " ".join(str(message).split())[:1000]
