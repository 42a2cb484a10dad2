"""A Caddy that meshop runs itself (``--caddy-dir``): started as a child, recorded by PID, restartable.

Used by the gateway and by agents that are told to own their node's Caddy, and by ``make demo``. Only
a Caddy started here is ever restarted (the 2.6.2 half-started-server bug); a user's own Caddy is only
talked to through its admin API.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from meshop.caddy.admin import CaddyAdmin
from meshop.errors import DriverError

PASSED_ON = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")  # nothing secret in these


def minimal_env(directory: Path, parent: Mapping[str, str]) -> dict[str, str]:
    """What a Caddy meshop starts may see: its own folders, and the locale, time zone, PATH and CA
    settings of ``parent`` (the daemon's environment); everything else stays behind."""
    env = {name: parent[name] for name in PASSED_ON if name in parent}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        HOME=str(directory),
        XDG_DATA_HOME=str(directory / "data"),
        XDG_CONFIG_HOME=str(directory / "config"),
    )
    return env


class ManagedCaddy:
    """``caddy run`` on ``<dir>/Caddyfile`` with its data (internal CA, certificates) under ``<dir>``."""

    def __init__(self, directory: Path, initial_config: str, caddy_bin: str = "caddy") -> None:
        self.directory = directory
        self.caddyfile = directory / "Caddyfile"
        self.pidfile = directory / "caddy.pid"
        self.logfile = directory / "caddy.log"
        self.initial_config = initial_config
        self.caddy_bin = shutil.which(caddy_bin) or caddy_bin
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """A minimal environment: never the daemon's own (its ``CONSUL_HTTP_TOKEN`` above all), because a
        Caddyfile can read any variable (``{env.X}``) and Caddy's admin API can show it back."""
        return minimal_env(self.directory, os.environ)

    def start(self, admin: CaddyAdmin, timeout: float = 20.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stop_stale()
        if not self.caddyfile.exists():
            self.caddyfile.write_text(self.initial_config)
        with open(self.logfile, "ab") as log:
            self.process = subprocess.Popen(
                [self.caddy_bin, "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        self.pidfile.write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + timeout
        while not admin.ready():
            if self.process.poll() is not None:
                raise DriverError(f"caddy exited at start (see {self.logfile}): {self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DriverError(f"caddy did not open its admin API within {timeout}s (see {self.logfile})")
            time.sleep(0.05)

    def save(self, caddyfile: str) -> None:
        """Keep the last good config on disk, so a restarted Caddy starts with it."""
        tmp = self.caddyfile.with_suffix(".tmp")
        tmp.write_text(caddyfile)
        os.replace(tmp, self.caddyfile)

    def restart(self, admin: CaddyAdmin) -> None:
        self.stop()
        self.start(admin)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.pidfile.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop_stale(self, timeout: float = 10.0) -> None:
        """Stop a Caddy that a killed meshop left running on this folder: the PID in ``caddy.pid``, and
        only when that process is a Caddy running this folder's Caddyfile (a reused PID is left alone)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if str(self.caddyfile).encode() not in cmdline or not any(b"caddy" in part for part in cmdline[:1]):
            return
        if self.process is not None and self.process.pid == pid:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pidfile.unlink(missing_ok=True)

    @property
    def ca_root(self) -> Path:
        """Where ``tls internal`` keeps its root certificate (to trust it in tests and the demo)."""
        return self.directory / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def _tail(self) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
