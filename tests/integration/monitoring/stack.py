"""A controller, an agent and a gateway as real ``meshop`` processes on one Consul and KV prefix.

Each daemon listens on a free loopback port (``--metrics-addr 127.0.0.1:0``) and registers
its ``meshop-metrics-*`` name in Consul; the tests find the bound addresses there, as Prometheus does.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from meshop.consul.services import metrics_registration
from tests.conftest import TEST_IMAGE
from tests.support import acl
from tests.support.meshop_proc import fence_process, meshop_process
from tests.support.procs import REPO, Process, free_port, wait_until

MONITORING = REPO / "charts" / "monitoring"
COMPONENTS = ("controller", "agent", "gateway")


def http_get(url: str, timeout: float = 3.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def sleeper_doc(name: str, node: str, env: list[dict[str, Any]] | None = None) -> str:
    """A Service document: one busybox sleeping, pinned to ``node``."""
    doc: dict[str, Any] = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "image": TEST_IMAGE,
            "command": ["/bin/sleep"],
            "args": ["3600"],
            "replicas": 1,
            "placement": {"node": node},
        },
    }
    if env:
        doc["spec"]["env"] = env
    return yaml.safe_dump(doc)


class Stack:
    def __init__(self, consul_addr: str, prefix: str, workdir: Path) -> None:
        tag = secrets.token_hex(3)
        self.consul_addr = consul_addr
        self.prefix = prefix
        self.workdir = workdir
        self.node = f"mon{tag}"
        self.instances = {"controller": f"ctl-{tag}", "agent": self.node, "gateway": f"gw-{tag}"}
        self.processes: dict[str, Process] = {}
        self.fence: Process | None = None  # beside the agent: a stateful service starts only while one watches

    def args(self, component: str, log_format: str, log_level: str) -> list[str]:
        common = ["--metrics-addr", "127.0.0.1:0", "--log-format", log_format, "--log-level", log_level]
        if component == "controller":
            return ["controller", "run", "--id", self.instances["controller"], *common]
        if component == "agent":
            state = self.workdir / "agent-state"
            return [
                "agent",
                "run",
                "--node",
                self.node,
                "--advertise-addr",
                "127.0.0.1",
                "--state-dir",
                str(state),
                "--lease-dir",
                str(self.workdir / "fence"),
                "--stop-grace",
                "1",
                "--usage-interval",  # usage series (the dashboard's Usage row) within seconds
                "1",
                *common,
            ]
        caddy = ["--caddy-dir", str(self.workdir / "gw-caddy"), "--tls", "off"]
        ports = ["--http-port", str(free_port()), "--https-port", str(free_port())]
        return ["gateway", "run", "--id", self.instances["gateway"], *caddy, *ports, *common]

    def start(
        self,
        components: tuple[str, ...] = COMPONENTS,
        log_format: str = "text",
        log_level: str = "info",
        extra: dict[str, list[str]] | None = None,
    ) -> Stack:
        if "agent" in components:
            self.fence = fence_process(self.node, self.workdir / "fence", self.workdir / "fence.log")
        for component in components:
            log = self.workdir / f"{component}.log"
            args = self.args(component, log_format, log_level) + (extra or {}).get(component, [])
            process = meshop_process(self.consul_addr, self.prefix, args, log)
            self.processes[component] = process.start()
        return self

    def service_id(self, component: str) -> str:
        node = self.node if component == "agent" else ""
        return metrics_registration(component, self.instances[component], "127.0.0.1:1", node).service_id

    def registrations(self) -> dict[str, dict[str, Any]]:
        """This stack's metrics registrations on the Consul agent, by component."""
        url = f"http://{self.consul_addr}/v1/agent/services"
        status, body = http_get(url, headers=acl.auth_headers(self.consul_addr))
        assert status == 200, body
        services = json.loads(body)
        return {c: services[self.service_id(c)] for c in self.processes if self.service_id(c) in services}

    def wait_registered(self, timeout: float = 20.0) -> dict[str, str]:
        """Every daemon's ``/metrics`` address as registered in Consul (what Prometheus discovers)."""
        found = wait_until(
            lambda: (regs := self.registrations()) and len(regs) == len(self.processes) and regs,
            timeout,
            what=f"meshop-metrics registrations\n{self.log_tails()}",
        )
        assert isinstance(found, dict)
        return {c: f"{reg['Address']}:{reg['Port']}" for c, reg in found.items()}

    def get(self, addr: str, path: str) -> tuple[int, str]:
        return http_get(f"http://{addr}{path}")

    def apply(self, text: str) -> None:
        """``meshop apply -f FILE``, the way a user applies a document."""
        source = self.workdir / f"doc-{secrets.token_hex(3)}.yaml"
        source.write_text(text)
        command = [sys.executable, "-m", "meshop", "--consul-addr", self.consul_addr, "--prefix", self.prefix]
        env = {**os.environ, "CONSUL_HTTP_TOKEN": acl.token_for(self.consul_addr, self.prefix, ["apply"]) or ""}
        done = subprocess.run(
            [*command, "apply", "-f", str(source)], capture_output=True, text=True, timeout=30, env=env
        )
        assert done.returncode == 0, done.stderr

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every daemon (by PID); their exit codes."""
        codes = {}
        for component, process in self.processes.items():
            process.stop()
            codes[component] = process.popen.returncode if process.popen else None
        if self.fence is not None:
            self.fence.stop()
        return codes

    def log_tails(self) -> str:
        return "\n".join(f"--- {c}\n{p.log_tail(15)}" for c, p in self.processes.items())


def prometheus_config(consul_addr: str, prefix: str = "") -> str:
    """The shipped prometheus.yml pointed at the test Consul, with 1 s scrapes and discovery refreshes.

    Its relabelling and its rule file (the shipped alerts.yml, by absolute path) are kept as they are;
    with ``prefix`` on an ACL-enabled Consul, discovery uses that prefix's prometheus token.
    """
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    token = acl.token_for(consul_addr, prefix, ["prometheus"]) if prefix else None
    for job in config["scrape_configs"]:
        for sd in job["consul_sd_configs"]:
            sd.update(server=consul_addr, refresh_interval="1s")
            if token:
                sd["token"] = token
    return yaml.safe_dump(config)
