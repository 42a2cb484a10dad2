"""A real Docker registry (Debian's docker-registry, distribution 2.8) on a loopback port."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.support.procs import Process, find_binary, free_port, wait_until


class RegistryServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: Process | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> RegistryServer:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n"
        )
        self.process = Process([find_binary("docker-registry"), "serve", str(config)], self.workdir / "registry.log")
        self.process.start()
        wait_until(self.ready, timeout, interval=0.05, what=f"registry on {self.addr}")
        return self

    def ready(self) -> bool:
        if not self.process or not self.process.alive():
            raise RuntimeError(f"registry exited:\n{self.process.log_tail() if self.process else ''}")
        with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=2) as response:
            return response.status == 200

    def stop(self) -> None:
        if self.process:
            self.process.stop()
