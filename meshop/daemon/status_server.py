"""``/metrics``, ``/healthz`` and ``/readyz`` for a daemon, on loopback unless configured otherwise.

``/healthz`` answers 200 while the process runs; ``/readyz`` answers 200 only while ``ready()``
says so (connected to Consul and reconciling), else 503 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from meshop.daemon.threads import DaemonThread
from meshop.errors import MeshopError
from meshop.model.digits import parse_port

Readiness = Callable[[], tuple[bool, str]]


def parse_listen(addr: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` or ``:9464`` (loopback) -> (host, port)."""
    host, sep, port_text = addr.rpartition(":")
    port = parse_port(port_text, zero=True)
    if not sep or port is None:
        raise MeshopError(f"listen address {addr!r} is not HOST:PORT")
    return (host.strip("[]") or "127.0.0.1"), port


class StatusServer:
    """A tiny threaded HTTP server; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, addr: str, ready: Readiness) -> None:
        host, port = parse_listen(addr)
        readiness = ready

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ok, reason = readiness()
                    self._send(200 if ok else 503, (reason or ("ready" if ok else "not ready")).encode() + b"\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise MeshopError(f"cannot listen on {addr}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = DaemonThread("status-http", self.httpd.serve_forever, on_stop=self.httpd.shutdown)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.started:  # shutdown() waits for serve_forever: it would hang if that never ran
            self._thread.stop(timeout)
        self.httpd.server_close()
