"""Helpers for the agent's integration tests: assignments, Consul reads, in-process and CLI agents."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.daemon import AgentDaemon, DaemonOptions
from meshop.agent.engine.runtime import Runtime
from meshop.agent.reconciler import AgentSettings
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import Policy, ServiceSpec, keys, spec_hash
from meshop.model.records import Assignment, Observed, dumps, loads_json
from tests.conftest import TEST_IMAGE
from tests.support import acl
from tests.support.meshop_proc import fence_process, meshop_process
from tests.support.procs import Process, wait_until
from tests.support.registry import RegistryServer

HTTPD = {
    "image": TEST_IMAGE,
    "command": ["/bin/httpd"],
    "args": ["-f", "-p", "8080", "-h", "/www"],
    "ports": [{"name": "http", "container": 8080}],
}
SLEEPER = {"image": TEST_IMAGE, "command": ["/bin/sleep"], "args": ["3600"]}


def http_spec(**extra: Any) -> dict[str, Any]:
    """busybox httpd on 8080 with an HTTP health check (fast interval for tests)."""
    spec: dict[str, Any] = {
        **HTTPD,
        "health": {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
    }
    spec.update(extra)
    return spec


def make_assignment(
    node: str, service: str, spec: dict[str, Any], *, replicas: int | None = None, generation: int = 1
) -> Assignment:
    resolved = ServiceSpec.from_dict(spec)
    return Assignment(
        service=service,
        node=node,
        replicas=resolved.replicas if replicas is None else replicas,
        generation=generation,
        spec_hash=spec_hash(resolved),
        spec=resolved.to_dict(),
    )


def assign(store: KVStore, node: str, service: str, spec: dict[str, Any], **kw: Any) -> Assignment:
    assignment = make_assignment(node, service, spec, **kw)
    store.put(keys.assignment(node, service), dumps(assignment))
    return assignment


def observed(store: KVStore, node: str, service: str) -> Observed | None:
    entry = store.get(keys.observed(node, service))
    return Observed.from_dict(loads_json(entry.value)) if entry else None


def consul_get(addr: str, path: str) -> Any:
    request = urllib.request.Request(f"http://{addr}{path}", headers=acl.auth_headers(addr))
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def passing(addr: str, service: str, node: str) -> list[tuple[str, int]]:
    """Healthy instances of ``service`` registered by ``node``'s agent, as (address, port)."""
    entries = consul_get(addr, f"/v1/health/service/{service}?passing") or []
    return [
        (e["Service"]["Address"], e["Service"]["Port"])
        for e in entries
        if (e["Service"].get("Meta") or {}).get("node") == node
    ]


def registrations(addr: str, node: str) -> dict[str, dict]:
    """This node's services on the Consul agent, by id."""
    return {
        sid: body
        for sid, body in (consul_get(addr, "/v1/agent/services") or {}).items()
        if (body.get("Meta") or {}).get("node") == node
    }


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Engine:
    """Read-only helpers on the shared Docker engine, scoped to one test node."""

    client: Any
    node: str

    def containers(self, service: str | None = None, all: bool = True) -> list[Any]:
        filters = [f"meshop.node={self.node}"]
        if service:
            filters.append(f"meshop.service={service}")
        return self.client.containers.list(all=all, filters={"label": filters})

    def running(self, service: str | None = None) -> list[Any]:
        return [c for c in self.containers(service) if c.status == "running"]

    def states(self, service: str | None = None) -> list[tuple[str, str, str]]:
        return sorted(
            (c.labels.get("meshop.replica", ""), c.labels.get("meshop.config-hash", ""), c.status)
            for c in self.containers(service)
        )


@dataclass
class RunningAgent:
    daemon: AgentDaemon
    thread: threading.Thread
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status_url(self) -> str:
        assert self.daemon.status is not None
        return f"http://{self.daemon.status.address}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.daemon.stop()
        self.thread.join(timeout=30)
        self.daemon.shutdown()


class AgentFactory:
    """Starts in-process agents for one node; all are stopped at teardown."""

    def __init__(self, node: str, config: ConsulConfig, tmp_path: Path) -> None:
        self.node = node
        self.config = config
        self.tmp_path = tmp_path
        self.lease_dir = tmp_path / f"fence-{node}"  # the node's lease folder, shared by its agent and fence
        self.started: list[RunningAgent] = []
        self.fences: list[Process] = []

    def __call__(
        self,
        *,
        resync: float = 30.0,
        drain: float = 0.5,
        policy: Policy | None = None,
        bind_mounts: tuple[str, ...] = (),
        config: ConsulConfig | None = None,
        state_dir: Path | None = None,
        heartbeat: float = 3.0,
        ttl: float = 10.0,
        wait_ready: bool = True,
        runtime: Runtime | None = None,
        clocks: Clocks = SYSTEM,
        usage_interval: float = 10.0,
        stop_grace: float = 1.0,
        fence: bool = False,
    ) -> RunningAgent:
        """An in-process agent; with ``fence`` a real ``meshop fence run`` beside it first (a stateful
        service starts only while a fence watches)."""
        if fence and not any(f.alive() for f in self.fences):
            self.start_fence()
        settings = AgentSettings(
            node=self.node,
            advertise_addr="127.0.0.1",
            labels={"zone": "test"},
            policy=policy or Policy(),
            bind_mounts=bind_mounts,
            drain=drain,
            stop_grace=stop_grace,
        )
        options = DaemonOptions(
            settings=settings,
            consul=config or self.config,
            state_dir=state_dir or (self.tmp_path / "state"),
            metrics_addr="127.0.0.1:0",
            resync=resync,
            heartbeat=heartbeat,
            ttl=ttl,
            usage_interval=usage_interval,
            lease_dir=self.lease_dir,
        )
        daemon = AgentDaemon(options, runtime, clocks=clocks).start()
        thread = threading.Thread(target=daemon.run, name=f"agent-{self.node}", daemon=True)
        thread.start()
        running = RunningAgent(daemon, thread)
        self.started.append(running)
        if wait_ready:
            wait_until(lambda: daemon.loop.passes > 0, 10, what="the agent's first pass")
        return running

    def start_fence(self) -> Process:
        fence = fence_process(self.node, self.lease_dir, self.tmp_path / f"fence-{self.node}.log")
        self.fences.append(fence)
        return fence

    def stop_all(self) -> None:
        for agent in self.started:
            agent.stop()
        for fence in self.fences:
            fence.stop()


def agent_process(
    node: str, consul_addr: str, prefix: str, workdir: Path, *extra: str, log_name: str = "agent.log"
) -> Process:
    """``meshop agent run`` as a real process (stopped by its PID); state in ``workdir/state``."""
    args = [
        "agent",
        "run",
        "--node",
        node,
        "--advertise-addr",
        "127.0.0.1",
        "--state-dir",
        str(workdir / "state"),
        "--metrics-addr",
        "127.0.0.1:0",
        "--stop-grace",
        "1",
        "--drain",
        "0.3",
        *extra,
    ]
    return meshop_process(consul_addr, prefix, args, workdir / log_name)


def run_passes(agent: RunningAgent, count: int, timeout: float = 10.0) -> None:
    """Wake the agent and wait until it has finished ``count`` more passes."""
    loop = agent.daemon.loop
    for _ in range(count):
        begun = loop.begun  # a pass already in flight may have read the state before the caller changed it
        agent.daemon.wakeup.notify("test")
        wait_until(lambda begun=begun: loop.ended_begun > begun, timeout, what="a pass begun after the wake-up")


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, interval=0.02, what=what)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


@contextlib.contextmanager
def registry_only_image(docker_client: Any, registry: RegistryServer, name: str) -> Iterator[str]:
    """A reference that exists only in the registry (pushed, then the local tag removed): pulls are real."""
    reference = f"{registry.addr}/{name}:1"
    docker_client.images.get(TEST_IMAGE).tag(reference)
    for line in docker_client.images.push(reference, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(reference)
    try:
        yield reference
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(reference, force=True)
