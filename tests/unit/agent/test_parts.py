"""The agent's small parts: state file, observed records, holds, pulls, probes, registrations, CLI parsing."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshop.agent.cluster.registrations import PROBE_REFRESH, ReplicaRegistrar, replica_registration
from meshop.agent.cluster.statefile import StateFile
from meshop.agent.engine.probes import HealthMonitor, ProbeTarget, probe
from meshop.agent.engine.puller import Puller
from meshop.agent.engine.runtime import ImagePullFailed
from meshop.agent.memory.holds import Holds
from meshop.agent.planning.plan import Container, Note
from meshop.agent.planning.report import observed_record, ready_count
from meshop.cli.main import cli
from meshop.config.agent import parse_labels
from meshop.model import ServiceSpec
from meshop.model.records import Assignment
from tests.support.procs import wait_until


def ctr(cid: str, replica: int = 0, state: str = "running", spec_hash: str = "h1", **kw: object) -> Container:
    base: dict[str, object] = dict(
        id=cid,
        name=cid,
        service="web",
        replica=replica,
        spec_hash=spec_hash,
        config_hash=spec_hash,
        generation=1,
        image="img",
        state=state,
    )
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


# -- state file ---------------------------------------------------------------------------------------


def test_state_file_round_trip_atomic_and_write_on_change(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state", "n1")
    assert state.load() is None
    assignments = {"web": Assignment("web", "n1", 2, 3, "abc", {"image": "img:1"})}
    assert state.save(assignments) is True
    assert state.save(assignments) is False  # unchanged: no write
    assert oct(os.stat(state.path).st_mode & 0o777) == "0o600"
    assert [p.name for p in state.path.parent.iterdir()] == [state.path.name]  # no temporary file left
    again = StateFile(tmp_path / "state", "n1")
    assert again.load() == assignments
    assert again.save(assignments) is False
    assert StateFile(tmp_path / "state", "n2").load() is None  # another node's name, another file


def test_state_file_ignores_garbage(tmp_path: Path) -> None:
    state = StateFile(tmp_path, "n1")
    state.path.write_text("{broken")
    assert state.load() is None


# -- observed record ----------------------------------------------------------------------------------


def test_ready_counts_replicas_running_the_assigned_spec_and_healthy() -> None:
    containers = [
        ctr("a", 0),
        ctr("b", 1, spec_hash="old"),
        ctr("c", 2, state="exited"),
        ctr("d", 3),  # beyond the replica count
        ctr("e", 0),  # second container of replica 0
    ]
    assert ready_count(containers, 3, "h1", False, {}) == 1
    assert ready_count(containers, 3, "h1", True, {"a": False, "e": True}) == 1
    assert ready_count(containers, 3, "h1", True, {}) == 0


def test_observed_record_words_and_reasons() -> None:
    containers = [ctr("a" * 64, 0, host_ports={"80/tcp": 32000}), ctr("b" * 64, 1, state="exited")]
    record = observed_record(
        node="n1",
        service="web",
        spec_hash="h1",
        generation=4,
        replicas=2,
        containers=containers,
        has_health=True,
        healthy={"a" * 64: True},
        note=Note("Updating", "waiting"),
        now=5.0,
    )
    assert [c.health for c in record.containers] == ["passing", "critical"]
    assert record.containers[0].id == "a" * 12 and record.containers[0].host_ports == {"80/tcp": 32000}
    assert (record.ready, record.reason, record.error) == (1, "Updating", "")
    failed = observed_record(
        node="n1",
        service="web",
        spec_hash="h1",
        generation=4,
        replicas=2,
        containers=[],
        has_health=False,
        healthy={},
        note=Note("ImagePullFailed", "no such image"),
        now=5.0,
    )
    assert (failed.reason, failed.error) == ("ImagePullFailed", "no such image")


# -- holds --------------------------------------------------------------------------------------------


def test_holds_grow_and_release() -> None:
    holds = Holds(1.0, 10.0)
    assert holds.held(100.0) == frozenset()
    assert holds.failed("x", 100.0) == 1.0
    assert holds.failed("x", 101.0) == 2.0
    assert holds.held(102.0) == frozenset({"x"})
    assert holds.next_release(102.0) == pytest.approx(1.0)
    assert holds.held(103.5) == frozenset() and holds.next_release(103.5) is None
    holds.succeeded("x")
    assert holds.failed("x", 200.0) == 1.0  # reset
    assert holds.failed("y", 300.0, minimum=30.0) == 30.0  # e.g. a rolled-back update: not before healthTimeout
    assert holds.held(329.0) == frozenset({"y"})
    holds.forget_except(set())
    assert holds.until == {}


# -- puller -------------------------------------------------------------------------------------------


class SlowFailingRuntime:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.pulls = 0

    def pull(self, image: str) -> None:
        self.pulls += 1
        self.release.wait(5)
        raise ImagePullFailed(f"pulling {image} failed after 3 attempts: nope")


def test_a_failed_pull_is_reported_once_to_every_waiting_service() -> None:
    runtime = SlowFailingRuntime()
    done = threading.Event()
    puller = Puller(runtime, done.set)  # type: ignore[arg-type]
    try:
        assert puller.request("img", "a") is None
        assert puller.request("img", "b") is None  # joins the running pull
        assert puller.pulling("img")
        runtime.release.set()
        assert done.wait(5)
        assert "nope" in (puller.request("img", "a") or "")
        assert "nope" in (puller.request("img", "b") or "")
        assert runtime.pulls == 1
        done.clear()
        assert puller.request("img", "a") is None  # told once: the next request pulls again
        assert done.wait(5) and runtime.pulls == 2
    finally:
        puller.stop()


# -- health -------------------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_probe_http_and_tcp(http_server: int) -> None:
    assert probe(ProbeTarget("http", "127.0.0.1", http_server, "/ok", timeout=1))
    assert not probe(ProbeTarget("http", "127.0.0.1", http_server, "/fail", timeout=1))
    assert probe(ProbeTarget("tcp", "127.0.0.1", http_server, timeout=1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert not probe(ProbeTarget("tcp", "127.0.0.1", closed, timeout=1))
    assert not probe(ProbeTarget("http", "127.0.0.1", closed, "/", timeout=1))


def test_monitor_reports_flips_and_needs_two_failures_to_turn_unhealthy() -> None:
    verdicts = {"c1": [False, True, False, True, False, False]}
    seen: list[bool] = []
    changes = threading.Event()

    def prober(target: ProbeTarget) -> bool:
        queue = verdicts["c1"]
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        seen.append(value)
        return value

    monitor = HealthMonitor(changes.set, fast_interval=0.01, prober=prober).start()
    try:
        monitor.update({"c1": ProbeTarget("tcp", "127.0.0.1", 1, interval=0.01, timeout=0.1)})
        wait_until(lambda: len(seen) >= 6, 5, what="six probes")
        wait_until(lambda: monitor.results().get("c1") is False, 5, what="unhealthy after two failures")
        assert changes.is_set()
        monitor.update({})
        assert monitor.results() == {}
    finally:
        monitor.stop()


def test_monitor_single_failure_after_passing_is_tolerated() -> None:
    answers = iter([True, False, True] + [True] * 1000)
    monitor = HealthMonitor(lambda: None, fast_interval=0.01, prober=lambda _t: next(answers))
    states: list[bool | None] = []
    monitor.start()
    try:
        monitor.update({"c1": ProbeTarget("tcp", "127.0.0.1", 1, interval=0.01, timeout=0.1)})
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            states.append(monitor.results().get("c1"))
        assert False not in states
        assert states[-1] is True
    finally:
        monitor.stop()


# -- registrations ------------------------------------------------------------------------------------


def test_replica_registration_carries_the_check_and_meta() -> None:
    spec = ServiceSpec.from_dict(
        {
            "image": "img:1",
            "ports": [{"name": "http", "container": 8080}],
            "health": {"http": {"path": "/healthz", "port": "http"}, "interval": "5s", "timeout": "500ms"},
        }
    )
    container = ctr("f" * 64, 1, host_ports={"8080/tcp": 31000}, generation=7)
    reg = replica_registration("n1", "10.1.2.3", "web", 1, container, spec, (8080, "tcp"), True)
    assert (reg.service_id, reg.name, reg.address, reg.port) == ("meshop-n1-web-1", "web", "10.1.2.3", 31000)
    assert reg.meta == {
        "node": "n1",
        "service": "web",
        "replica": "1",
        "generation": "7",
        "specHash": "h1",
        "container": "f" * 12,
        "probe": "agent",
    }
    # no HTTP check for Consul (it would follow redirects): the agent's verdict in a TTL check, and a TCP check
    verdict, port = reg.checks
    assert (verdict.check_id, verdict.ttl, verdict.http, verdict.initial_status) == (
        "meshop-n1-web-1:health",
        "90s",
        None,
        "passing",
    )
    assert (port.tcp, port.http, port.interval, port.timeout) == ("10.1.2.3:31000", None, "5000ms", "500ms")
    unhealthy = replica_registration("n1", "10.1.2.3", "web", 1, container, spec, (8080, "tcp"), False)
    assert [c.initial_status for c in unhealthy.checks] == ["critical", "critical"]


def test_http_verdicts_are_sent_when_they_change_or_are_due() -> None:
    clock = [1000.0]

    class Calls:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str]] = []

        def ttl_pass(self, check_id: str, note: str = "") -> None:
            self.sent.append(("pass", check_id))

        def ttl_fail(self, check_id: str, note: str = "") -> None:
            self.sent.append(("fail", check_id))

    calls = Calls()
    registrar = ReplicaRegistrar(calls, "n1", clock=lambda: clock[0])  # type: ignore[arg-type]
    assert registrar.report({"a:health": True, "b:health": False}) == 2
    assert registrar.report({"a:health": True, "b:health": False}) == 0  # unchanged, not due
    assert registrar.report({"a:health": False, "b:health": False}) == 1
    clock[0] += PROBE_REFRESH
    assert registrar.report({"a:health": False, "b:health": False}) == 2  # renewed before the TTL runs out
    assert calls.sent == [
        ("pass", "a:health"),
        ("fail", "b:health"),
        ("fail", "a:health"),
        ("fail", "a:health"),
        ("fail", "b:health"),
    ]


# -- CLI ----------------------------------------------------------------------------------------------


def test_parse_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("zone=a, disk=ssd") == {"zone": "a", "disk": "ssd"}
    with pytest.raises(Exception, match="not key=value"):
        parse_labels("zone")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "Bad_Name", "--advertise-addr", "1.2.3.4"], "RFC 1123"),
        (["--node", "n1", "--advertise-addr", " "], "must not be empty"),
        (["--node", "n1", "--advertise-addr", "1.2.3.4", "--labels", "nokey"], "not key=value"),
        (["--advertise-addr", "1.2.3.4"], "Missing option '--node'"),
    ],
    ids=["bad-node", "empty-address", "bad-labels", "missing-node"],
)
def test_agent_run_rejects_bad_flags(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["agent", "run", *args])
    assert result.exit_code != 0
    assert message in result.output
