"""The shell checks of bootstrap plans, run in a real shell against a stand-in ``systemctl``/``ss``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from meshop.bootstrap import checks, render
from meshop.bootstrap.plan import plan_gateway, plan_node
from meshop.bootstrap.steps import Command
from tests.unit.bootstrap.test_plan import GATEWAY, NODE, SOFTWARE

# systemctl as a table: E_<unit>, A_<unit>, R_<unit> (unit with '.'/'-' as '_') hold is-enabled's
# answer, is-active's state and NeedDaemonReload; many-unit calls answer as systemd does (any-of for
# is-active, values separated by blank lines for show --value).
SYSTEMCTL = r"""#!/bin/bash
verb=$1; shift
units=(); for a in "$@"; do case "$a" in -*|NeedDaemonReload) ;; *) units+=("$a");; esac; done
key() { local u=${1//./_}; echo "${u//-/_}"; }
case "$verb" in
  is-enabled) rc=1
    for u in "${units[@]}"; do v=E_$(key "$u"); echo "${!v:-disabled}"; [ "${!v}" = enabled ] && rc=0; done; exit $rc;;
  is-active) rc=3; for u in "${units[@]}"; do v=A_$(key "$u"); [ "${!v}" = active ] && rc=0; done; exit $rc;;
  show) first=1; for u in "${units[@]}"; do [ $first = 1 ] || echo; first=0; v=R_$(key "$u"); echo "${!v:-no}"; done;;
esac
"""


def _run(tmp_path: Path, script: str, env: dict[str, str], **fakes: str) -> int:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in {"systemctl": SYSTEMCTL, **fakes}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["sh", "-c", script], env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, capture_output=True
    ).returncode


UNITS = ["a.service", "b-c.service"]
ALL_GOOD = {"E_a_service": "enabled", "A_a_service": "active", "E_b_c_service": "enabled", "A_b_c_service": "active"}


@pytest.mark.parametrize(
    ("change", "passes"),
    [
        ({}, True),  # many units: `show --value` puts blank lines between them, still "no reload needed"
        ({"A_b_c_service": "failed"}, False),  # one inactive unit is enough to fail (is-active A B is any-of)
        ({"E_a_service": "disabled"}, False),
        ({"E_a_service": "masked"}, False),
        ({"R_b_c_service": "yes"}, False),  # the file on disk is not the loaded one
    ],
)
def test_units_running_checks_every_unit_on_its_own(tmp_path: Path, change, passes):
    assert (_run(tmp_path, checks.units_running(UNITS), {**ALL_GOOD, **change}) == 0) is passes


def test_units_running_one_unit(tmp_path: Path):
    assert _run(tmp_path, checks.units_running(["a.service"]), ALL_GOOD) == 0


def test_consul_is_started_as_exec_and_its_leader_awaited():
    """A lone server never sends READY=1: Type=notify would be killed after 90 s on every init."""
    assert "Type=exec\n" in render.CONSUL_UNIT and "Type=notify" not in render.CONSUL_UNIT
    for steps in (plan_gateway(GATEWAY, SOFTWARE), plan_node(NODE, SOFTWARE)):
        titles = [s.title for s in steps]
        started = next(i for i, t in enumerate(titles) if t.startswith("systemd: consul.service"))
        assert titles[started + 1].startswith("Consul answers and has a leader")
        assert render.CONSUL_CONFIG in steps[started + 1].after_change  # a restart is awaited too
    bootstrap = next(s for s in plan_gateway(GATEWAY, SOFTWARE) if s.title.startswith("Consul ACLs bootstrapped"))
    assert "consul info" not in bootstrap.apply  # refused before the bootstrap: it waited 60 s on every init


@pytest.mark.parametrize(("body", "passes"), [(b'"100.64.0.1:8300"', True), (b'""', False), (None, False)])
def test_consul_leader_check_reads_the_status_endpoint(tmp_path: Path, body, passes):
    """The check against a real HTTP server: a leader's address passes, "" (no leader) and no answer fail."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v1/status/leader" else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port if body is not None else 1}"
        check = checks.consul_leader().check.replace(checks.CONSUL_HTTP, url)
        assert (_run(tmp_path, check, {}) == 0) is passes
    finally:
        server.shutdown()
        server.server_close()


def test_agent_wants_docker_but_runs_with_an_engine_of_the_users_own():
    unit = render.AGENT_UNIT
    assert "Requires=" not in unit  # no docker.service (rootless, podman's socket): the agent still starts
    assert "Wants=network-online.target docker.service meshop-fence.service\n" in unit
    assert "After=network-online.target docker.service consul.service meshop-fence.service\n" in unit


def test_the_fence_unit_restarts_at_once_and_reads_the_agents_configuration():
    """The fence is the only guard of a stateful copy while the agent is down (docs/stateful.md)."""
    unit = render.FENCE_UNIT
    assert "Restart=always\nRestartSec=1\n" in unit
    assert "ExecStart=/usr/local/bin/meshop fence run --config /etc/meshop/agent.yaml\n" in unit
    assert "EnvironmentFile" not in unit and "Requires=" not in unit  # no token; an engine of the user's own
    assert "DynamicUser" not in unit  # root: the Docker socket and the root-only lease folder


def test_stock_caddy_is_masked_on_every_host_and_the_gateway_ports_checked():
    for steps in (plan_gateway(GATEWAY, SOFTWARE), plan_node(NODE, SOFTWARE)):
        titles = [s.title for s in steps]
        assert titles.index("Debian's own caddy.service stopped and masked (meshop runs its own Caddy)") == (
            titles.index("packages caddy python3-venv ca-certificates") + 1
        )
    titles = [s.title for s in plan_gateway(GATEWAY, SOFTWARE)]
    assert titles[-3] == "ports 80/443 free for meshop-gateway.service" and titles[-2].startswith("systemd: meshop-")


SS = """#!/bin/sh
printf '%s\\n' "$SS_OUT"
"""


@pytest.mark.parametrize(
    ("listeners", "passes"),
    [
        ("", True),
        ('LISTEN 0 4096 *:80 *:* users:(("caddy",pid=PID_MESHOP,fd=7))', True),  # meshop's own Caddy
        ('LISTEN 0 4096 *:80 *:* users:(("caddy",pid=PID_OTHER,fd=7))', False),  # Debian's caddy.service
    ],
)
def test_ports_free_tells_meshops_caddy_from_anyone_elses(tmp_path: Path, listeners, passes):
    """Who holds a port is told by its cgroup (the unit), read from /proc (a stand-in folder here)."""
    command = checks.ports_free((80, 443), "meshop-gateway.service")
    fake_proc = tmp_path / "proc"
    holders = {"101": "0::/system.slice/meshop-gateway.service\n", "202": "0::/system.slice/caddy.service\n"}
    for pid, cgroup in holders.items():
        (fake_proc / pid).mkdir(parents=True)
        (fake_proc / pid / "cgroup").write_text(cgroup)
        (fake_proc / pid / "comm").write_text("caddy\n")
    script = command.check.replace("/proc/", f"{fake_proc}/")
    out = listeners.replace("PID_MESHOP", "101").replace("PID_OTHER", "202")
    assert (_run(tmp_path, script, {"SS_OUT": out}, ss=SS) == 0) is passes
    if not passes:
        failed = subprocess.run(
            ["sh", "-c", command.apply.replace("/proc/", f"{fake_proc}/")],
            env={"SS_OUT": out, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
        )
        assert failed.returncode == 1 and "ports 80/443 are held by: caddy (pid 202)" in failed.stderr


class _Shell:
    """A host that runs commands in a local shell (the executor's Host protocol)."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None):
        from meshop.ssh.session import Result

        self.ran.append(command)
        done = subprocess.run(["sh", "-c", command], capture_output=True)
        return Result(done.returncode, done.stdout, done.stderr)

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        raise AssertionError("no files here")


def test_a_command_that_applied_forces_the_steps_that_follow_it(tmp_path: Path):
    from meshop.bootstrap.execute import execute

    flag, restarted = tmp_path / "env", tmp_path / "restarted"
    write = Command("env file", check=f"[ -e {flag} ]", apply=f"touch {flag}")
    restart = Command("restart", check="true", apply=f"touch {restarted}", after_change=("env file",))
    outcomes = execute([write, restart], _Shell())
    assert [o.changed for o in outcomes] == [True, True] and restarted.exists()
    restarted.unlink()
    assert [o.changed for o in execute([write, restart], _Shell())] == [False, False]  # a re-run: nothing
    assert not restarted.exists()


def test_agent_and_gateway_readiness_awaited_after_their_start():
    node = [s.title for s in plan_node(NODE, SOFTWARE)]
    assert node[-1] == "meshop agent ready (http://127.0.0.1:9464/readyz)"
    gateway = [s.title for s in plan_gateway(GATEWAY, SOFTWARE)]
    assert gateway[-2].startswith("systemd: meshop-controller.service")
    assert gateway[-1] == "meshop gateway ready (http://127.0.0.1:9466/readyz)"


def test_a_readiness_step_that_gives_up_shows_the_daemons_answer(tmp_path: Path, monkeypatch):
    import http.server
    import threading

    class NotReady(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"not ready: caddy load refused: listen tcp :443: address already in use")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(checks, "READY_SECONDS", 1)
    try:
        step = checks.http_ready("meshop gateway", f"http://127.0.0.1:{server.server_port}/readyz", "meshop-gateway")
        failed = subprocess.run(["sh", "-c", step.apply], capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert failed.returncode == 1
    assert "caddy load refused: listen tcp :443: address already in use" in failed.stderr
    assert "meshop gateway is not ready after 1 s; see journalctl -u meshop-gateway" in failed.stderr


def test_a_readiness_wait_is_not_a_change(tmp_path: Path):
    """Waiting for a daemon that is briefly not ready changes nothing: the re-run still says 0 changed."""
    from meshop.bootstrap.execute import execute

    flag = tmp_path / "ready"
    wait = checks.http_ready("x", "http://127.0.0.1:1/", "x")
    wait = type(wait)(wait.name, check=f"[ -e {flag} ]", apply=f"touch {flag}", changes=False)
    restart = Command("restart", check="true", apply="false", after_change=(wait.title,))
    assert [o.changed for o in execute([wait, restart], _Shell())] == [False, False]
