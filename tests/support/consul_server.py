"""A real Consul agent on free loopback ports: ``-dev`` (in memory) or a one-node persistent server."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.support import acl
from tests.support.procs import Process, find_binary, free_port, wait_until


class ConsulServer:
    """Consul for one test session or one test; restartable on the same ports.

    ``persistent=True`` runs a single-node server with a data dir, so KV survives a restart (what a
    real gateway does); the default ``-dev`` mode starts faster and forgets everything on restart,
    which is how tests make the Raft index go backwards.
    """

    def __init__(
        self, workdir: Path, *, persistent: bool = False, node_name: str = "consul-test", hcl: str = ""
    ) -> None:
        self.workdir = workdir
        self.hcl = hcl
        self.persistent = persistent
        self.node_name = node_name
        self.http_port = free_port()
        self.dns_port = free_port()
        self.ports = {"serf_lan": free_port(), "serf_wan": free_port(), "server": free_port()}
        self.process: Process | None = None
        self.starts = 0
        self.token = ""  # management token, when the hcl enables ACLs

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def args(self) -> list[str]:
        args = [
            find_binary("consul", "MESHOP_CONSUL_BIN"),
            "agent",
            "-node",
            self.node_name,
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-http-port",
            str(self.http_port),
            "-dns-port",
            str(self.dns_port),
            "-grpc-port",
            "-1",
            "-serf-lan-port",
            str(self.ports["serf_lan"]),
            "-serf-wan-port",
            str(self.ports["serf_wan"]),
            "-server-port",
            str(self.ports["server"]),
            "-log-level",
            "warn",
        ]
        if self.persistent:
            data = self.workdir / "data"
            data.mkdir(parents=True, exist_ok=True)
            args += ["-server", "-bootstrap-expect", "1", "-data-dir", str(data), "-ui=false"]
            args += ["-hcl", "performance { raft_multiplier = 1 }"]
        else:
            args.append("-dev")
        if self.hcl:
            args += ["-hcl", self.hcl]
        return args

    def start(self, timeout: float = 30.0) -> ConsulServer:
        self.starts += 1
        if self.token:
            acl.register_server(self.addr, self.token)
        self.process = Process(self.args(), self.workdir / f"consul-{self.starts}.log").start()
        try:
            wait_until(self.ready, timeout, interval=0.05, what=f"consul on {self.addr}")
        except TimeoutError:
            log = self.process.log_tail()
            self.stop()
            raise TimeoutError(f"consul did not become ready on {self.addr}:\n{log}") from None
        return self

    def ready(self) -> bool:
        """A leader is elected, this node's serfHealth passes (sessions need it), and KV answers."""
        if not self.process or not self.process.alive():
            raise RuntimeError(f"consul exited:\n{self.process.log_tail() if self.process else ''}")
        leader = self._get("/v1/status/leader")
        if not leader:
            return False
        checks = self._get(f"/v1/health/node/{self.node_name}")
        if not any(c["CheckID"] == "serfHealth" and c["Status"] == "passing" for c in checks or []):
            return False
        self._get("/v1/kv/meshop-ready-probe")
        return True

    def _get(self, path: str) -> object:
        request = urllib.request.Request(self.url + path, headers={"X-Consul-Token": self.token} if self.token else {})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(body) if body else None

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def power_cycle(self) -> None:
        """SIGKILL and start again without waiting: callers see the server while it elects and replays."""
        self.kill()
        self.starts += 1
        self.process = Process(self.args(), self.workdir / f"consul-{self.starts}.log").start()

    def restart(self) -> ConsulServer:
        self.stop()
        return self.start()
