"""Simulated nodes and controller handles for the controller's integration tests (see conftest.py).

``SimNode`` does, by hand, what a node's agent does through Consul: it writes its ``nodes/<name>`` record,
registers ``meshop-agent-<name>`` with a TTL check that a heartbeat thread keeps passing, and writes
``observed/<name>/<service>`` for its assignments when told to. Stopping the heartbeat is what a dead
agent looks like to the controller.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.records import (
    Assignment,
    Capacity,
    ContainerState,
    Event,
    NodeRecord,
    Observed,
    ServiceStatus,
    dumps,
    loads_json,
)
from tests.support.consul_server import ConsulServer
from tests.support.procs import REPO, Process, find_binary

GiB = 1024**3


class SimNode:
    def __init__(self, store: KVStore, name: str, *, ttl: float = 1.0) -> None:
        self.store = store
        self.name = name
        self.services = Services(store.config, KVStore(store.config).client)
        self.service_id = f"meshop-agent-{name}"
        self.check_id = f"{self.service_id}:ttl"
        self.ttl = ttl
        self._beating = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def join(self, *, labels: dict[str, str] | None = None, memory: int = 8 * GiB, cpus: float = 4.0) -> SimNode:
        record = NodeRecord(self.name, "127.0.0.1", labels or {}, Capacity(cpus, memory), version="sim")
        self.record = dumps(record)
        self.store.put(keys.node(self.name), self.record)
        check = CheckSpec(self.check_id, "agent alive", ttl=f"{int(self.ttl * 1000)}ms", initial_status="passing")
        self.services.register(
            Registration(self.service_id, self.service_id, "127.0.0.1", 0, meta={"node": self.name}, checks=(check,))
        )
        self.resume()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._closed.is_set():
            if self._beating.is_set():
                with contextlib.suppress(ConsulError):  # e.g. deregistered while closing
                    self.services.ttl_pass(self.check_id)
            self._closed.wait(self.ttl / 4)

    def stop_agent(self) -> None:
        """The agent dies: no more heartbeats, so its check goes critical after its TTL."""
        self._beating.clear()

    def resume(self, report: bool = True) -> None:
        """Beat again; ``report``: rewrite the node record, as a real agent reports back after a pass."""
        self._beating.set()
        self.services.ttl_pass(self.check_id)
        if report and self._thread is not None:
            self.store.put(keys.node(self.name), self.record)

    def assignment(self, service: str) -> Assignment | None:
        entry = self.store.get(keys.assignment(self.name, service))
        return Assignment.from_dict(loads_json(entry.value)) if entry else None

    def report(self, service: str, ready: int | None = None, *, reason: str = "", error: str = "") -> Observed:
        """Write observed state for the current assignment, as a healthy (or failing) agent would."""
        a = self.assignment(service)
        assert a is not None, f"{self.name} has no assignment of {service}"
        ready = a.replicas if ready is None else ready
        containers = tuple(
            ContainerState(
                f"{self.name}-{service}-{i}",
                f"meshop-{service}-{i}",
                i,
                str(a.spec.get("image", "")),
                "running",
                "passing" if i < ready else "critical",
                a.spec_hash,
                host_ports={"80/tcp": 30000 + i},
            )
            for i in range(a.replicas)
        )
        seen = Observed(service, self.name, a.spec_hash, a.generation, ready, containers, reason, error)
        self.store.put(keys.observed(self.name, service), dumps(seen))
        return seen

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):  # best effort at teardown
            self.services.deregister(self.service_id)


@dataclass
class CliController:
    """``meshop controller run`` as a real process, stopped by its PID."""

    id: str
    process: Process
    metrics_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float | None:
        status, body = self.get("/metrics")
        if status != 200:
            return None
        total = None
        for line in body.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def consul_kv_put(server: ConsulServer, key: str, text: str, tmp_path: Path) -> None:
    """Write a document the way a user does: with the real ``consul`` CLI (and the master token)."""
    source = tmp_path / f"doc-{abs(hash((key, text)))}.txt"
    source.write_text(text)
    subprocess.run(
        [find_binary("consul", "MESHOP_CONSUL_BIN"), "kv", "put", f"-http-addr={server.addr}", key, f"@{source}"],
        env={**os.environ, "CONSUL_HTTP_TOKEN": server.token},
        check=True,
        capture_output=True,
        timeout=20,
        cwd=REPO,
    )


def service_doc(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"image": "meshop-test/busybox:1", "ports": [{"name": "http", "container": 80}], **spec},
    }
    return json.dumps(body, indent=2)


def status_of(store: KVStore, name: str) -> ServiceStatus | None:
    entry = store.get(keys.service_status(name))
    return ServiceStatus.from_dict(loads_json(entry.value)) if entry else None


def condition(store: KVStore, name: str, kind: str) -> tuple[str, str] | None:
    status = status_of(store, name)
    cond = status.condition(kind) if status else None
    return (cond.status, cond.reason) if cond else None


def placement_of(store: KVStore, service: str) -> dict[str, int]:
    result = {}
    for entry in store.list(keys.ASSIGNMENTS).entries:
        node, svc = keys.split(entry.key, keys.ASSIGNMENTS)
        if svc == service:
            result[node] = Assignment.from_dict(loads_json(entry.value)).replicas
    return result


def events_of(store: KVStore, kind: str | None = None) -> list[Event]:
    events = [Event.from_dict(loads_json(e.value)) for e in store.list(keys.EVENTS).entries]
    return [e for e in events if kind is None or e.kind == kind]


def leader_id(store: KVStore) -> str | None:
    entry = store.get(keys.LEADER)
    if entry is None or not entry.session:
        return None
    return str(json.loads(entry.value)["id"])
