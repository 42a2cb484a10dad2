"""A real OpenSSH server on a free loopback port, with its own host key and one client key (root).

The "host" behind it is this machine, so commands run there reach the shared Docker engine: a node's
SSH side for ``meshop logs``/``exec`` and the SSH module's tests. Stopped by PID.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.procs import Process, find_binary, free_port, wait_until


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "meshop-test", "-f", str(path)], check=True)
    return path


def fingerprint_of(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


class SshServer:
    """Listens on 127.0.0.1 and 127.0.0.2 (two "nodes" with one host behind them)."""

    def __init__(self, workdir: Path, host_key_kind: str = "ed25519") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = keygen(workdir / "host_key", host_key_kind)
        self.client_key = keygen(workdir / "client_key")
        (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
        self.fingerprint = fingerprint_of(workdir / "host_key.pub")
        self.process: Process | None = None

    @property
    def target(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def known_hosts_line(self, address: str = "127.0.0.1") -> str:
        kind, blob = (self.workdir / "host_key.pub").read_text().split()[:2]
        return f"[{address}]:{self.port} {kind} {blob}\n"

    def start(self) -> SshServer:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PidFile {self.workdir / 'sshd.pid'}\nSubsystem sftp internal-sftp\nMaxStartups 50\nMaxSessions 50\n"
        )
        self.process = Process([find_binary("sshd"), "-D", "-e", "-f", str(config)], self.workdir / "sshd.log").start()
        wait_until(lambda: "listening on" in self.process.log_tail().lower() or self._answers(), 15, what="sshd")
        return self

    def _answers(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
