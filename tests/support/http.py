"""HTTP(S) requests to loopback servers with a chosen Host/SNI, without touching DNS."""

from __future__ import annotations

import http.client
import socket
import ssl


def get(
    port: int, host: str, path: str = "/", *, tls_ca: str | None = None, addr: str = "127.0.0.1", timeout: float = 5.0
) -> tuple[int, str]:
    """GET ``path`` from ``addr:port`` as ``host`` (Host header, and SNI when ``tls_ca`` is given)."""
    if tls_ca:
        context = ssl.create_default_context(cafile=tls_ca)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = lambda _address, t=timeout, s=None: socket.create_connection((addr, port), t, s)  # type: ignore[attr-defined]
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        conn.close()
