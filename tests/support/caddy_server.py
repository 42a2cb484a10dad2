"""A real Caddy (Debian's 2.6) with its admin API on a private unix socket and a snippet folder."""

from __future__ import annotations

import http.client
import socket
import tempfile
from pathlib import Path

from tests.support.procs import Process, find_binary, wait_until


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (Caddy's admin API)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class CaddyServer:
    """Caddy whose Caddyfile imports ``sites/*.caddy``; the admin socket lives in a short /tmp path."""

    def __init__(self, workdir: Path, extra_global: str = "") -> None:
        self.workdir = workdir
        self.sites = workdir / "sites"
        self.sites.mkdir(parents=True, exist_ok=True)
        # unix socket paths are limited to 108 bytes; pytest's tmp paths can be longer
        self.admin_socket = Path(tempfile.mkdtemp(prefix="mcaddy-", dir="/tmp")) / "admin.sock"
        self.caddyfile = workdir / "Caddyfile"
        self.caddyfile.write_text(
            f"{{\n\tadmin unix/{self.admin_socket}\n\tauto_https off\n{extra_global}}}\nimport {self.sites}/*.caddy\n"
        )
        self.process: Process | None = None

    def start(self, timeout: float = 20.0) -> CaddyServer:
        args = [find_binary("caddy"), "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"]
        env = {
            "HOME": str(self.workdir),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
        }
        self.process = Process(args, self.workdir / "caddy.log", env=env).start()
        wait_until(self.admin_ready, timeout, interval=0.05, what="caddy admin socket")
        return self

    def admin(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        conn = UnixHTTPConnection(str(self.admin_socket))
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            headers["Host"] = ""  # Caddy accepts only an empty Host on its unix-socket admin API
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def admin_ready(self) -> bool:
        if not self.process or not self.process.alive():
            raise RuntimeError(f"caddy exited:\n{self.process.log_tail() if self.process else ''}")
        return self.admin_socket.exists() and self.admin("GET", "/config/")[0] == 200

    def stop(self) -> None:
        if self.process:
            self.process.stop()
