"""events (list, follow), version, and the errors every read command gives: unreachable, ACL denied."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from meshop import __version__
from meshop.consul.events import EventLog
from meshop.consul.store import KVStore
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import free_port, wait_until

READ_COMMANDS = [
    ["status"],
    ["status", "--watch"],
    ["get", "services"],
    ["get", "nodes", "n1"],
    ["describe", "service", "web"],
    ["events", "--follow"],
]


def test_events_lists_the_newest_oldest_first(meshop, store: KVStore) -> None:
    log = EventLog(store, "controller")
    for i in range(3):
        log.append("Scheduled", f"service/s{i}", f"placed s{i}")
    code, out, err = meshop("events", "-n", "2")
    assert (code, err) == (0, "")
    assert [line.split()[2:] for line in out.splitlines()] == [
        ["Scheduled", "service/s1", "controller", "placed", "s1"],
        ["Scheduled", "service/s2", "controller", "placed", "s2"],
    ]
    code, out, _ = meshop("events", "-o", "json")
    assert [json.loads(line)["object"] for line in out.splitlines()] == ["service/s0", "service/s1", "service/s2"]
    assert meshop("events", "-n", "0")[:2] == (0, "")


def test_events_follow_prints_new_events_as_they_land(consul_server, store: KVStore, tmp_path: Path) -> None:
    log = EventLog(store, "controller")
    log.append("LeaderElected", "controller/c1", "c1 leads")
    output = tmp_path / "follow.log"
    follow = meshop_process(consul_server.addr, store.prefix, ["events", "-n", "1", "--follow"], output).start()
    try:
        wait_until(lambda: "c1 leads" in output.read_text(), 20, what="the existing event")
        log.append("NodeLost", "node/n1", "node n1 is NotReady")
        log.append("Rescheduled", "service/web", "moved off n1 (NodeLost); now on n2=1")
        wait_until(lambda: "now on n2=1" in output.read_text(), 5, what="the new events")
        lines = output.read_text().splitlines()
        assert [line.split()[2] for line in lines] == ["LeaderElected", "NodeLost", "Rescheduled"]
        follow.signal(signal.SIGINT)
        assert follow.popen is not None and follow.popen.wait(10) == 130
        assert "Traceback" not in output.read_text()
    finally:
        follow.stop()


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_consul_unreachable_is_one_line_naming_the_address_exit_2(args: list[str], tmp_path: Path) -> None:
    port = free_port()
    code, out, err = invoke(f"127.0.0.1:{port}", "meshop", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"Error: Consul at http://127.0.0.1:{port} is unreachable (")
    assert err.rstrip().endswith("start it or set CONSUL_HTTP_ADDR / --consul-addr")


@pytest.mark.parametrize("args", [a for a in READ_COMMANDS if "--watch" not in a], ids=" ".join)
def test_acl_denied_says_so(acl_consul: ConsulServer, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    code, out, err = invoke(acl_consul.addr, "meshop", *args, role_token=False)
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: Consul at {acl_consul.url} denied reading meshop/")
    assert "ACL permission denied; set CONSUL_HTTP_TOKEN / --token to a token with access" in err
    assert "Traceback" not in err


def test_with_the_token_status_reads(acl_consul: ConsulServer) -> None:
    args = ("--token", acl_consul.token, "status", "-o", "json")
    code, out, err = invoke(acl_consul.addr, "meshop", *args, role_token=False)
    assert (code, err) == (0, "")
    assert json.loads(out)["services"] == []


def test_version_prints_the_package_version_and_build_info(capsys: pytest.CaptureFixture[str]) -> None:
    from meshop.cli.main import run

    assert run(["version"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"meshop {__version__}"
    assert "commit:" in out and "python:" in out and "py-consul" in out
    assert run(["version", "-o", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == __version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
