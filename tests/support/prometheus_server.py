"""A real Prometheus on a loopback port with its own config and data dir.

Debian 12's Prometheus is built without Consul service discovery, so setup puts Debian 11's 2.24
(which has it) into .dev/bin; that one is preferred here.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.procs import REPO, Process, find_binary, free_port, wait_until


def prometheus_binary(name: str = "prometheus") -> str:
    local = REPO / ".dev" / "bin" / name
    return str(local) if local.exists() else find_binary(name)


class PrometheusServer:
    def __init__(self, workdir: Path, config_text: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "prometheus.yml"
        self.config_text = config_text
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        args = [
            prometheus_binary(),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process = Process(args, self.workdir / "prometheus.log").start()
        wait_until(self.ready, timeout, interval=0.1, what="prometheus ready")
        return self

    def ready(self) -> bool:
        if not self.process or not self.process.alive():
            raise RuntimeError(f"prometheus exited:\n{self.process.log_tail() if self.process else ''}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def query(self, expr: str) -> list[dict]:
        """Instant query; returns the result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def targets(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            return list(json.loads(response.read())["data"]["activeTargets"])

    def stop(self) -> None:
        if self.process:
            self.process.stop()
