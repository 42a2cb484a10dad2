"""A Caddy that meshop starts must not inherit the daemon's environment (its Consul ACL token above all).

Attack: anyone who can get a Caddyfile placeholder ``{env.CONSUL_HTTP_TOKEN}`` rendered, read the Caddy
process's environment (a compromised Caddy, a crash dump, ``/proc/PID/environ`` as the same user), or
reach its admin API, gets the daemon's Consul token. Both the node Caddy (``meshop agent run
--caddy-dir``) and the gateway Caddy (``meshop gateway run --caddy-dir``) are started for real with a
token in the daemon's environment; their ``/proc/PID/environ`` must not hold it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.helpers import agent_process
from tests.integration.routing.helpers import short_dir, stop_caddy_dir
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, free_port, wait_until


def caddy_environ(caddy_dir: Path, daemon: Process) -> dict[str, str]:
    """The environment of the Caddy the daemon started, read from /proc by the PID it recorded."""

    def started() -> int | None:
        pidfile = caddy_dir / "caddy.pid"
        if not daemon.alive():
            raise AssertionError(f"the daemon exited:\n{daemon.log_tail()}")
        return int(pidfile.read_text()) if pidfile.exists() and (caddy_dir / "admin.sock").exists() else None

    pid = wait_until(started, 30, what="the daemon's Caddy")
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"caddy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.parametrize("daemon", ["node-caddy", "gateway-caddy"])
def test_a_caddy_meshop_starts_holds_no_consul_token(
    consul_server: Any, prefix: str, node: str, tmp_path: Path, daemon: str
) -> None:
    token = f"tok-{secrets.token_hex(8)}"
    caddy_dir = short_dir("s")
    if daemon == "node-caddy":
        proc = agent_process(
            node,
            consul_server.addr,
            prefix,
            tmp_path,
            "--caddy-dir",
            str(caddy_dir),
            "--ingress-port",
            str(free_port()),
        )
    else:
        args = ["gateway", "run", "--caddy-dir", str(caddy_dir), "--https-port", str(free_port())]
        args += ["--http-port", str(free_port()), "--metrics-addr", "127.0.0.1:0"]
        proc = meshop_process(consul_server.addr, prefix, args, tmp_path / "gateway.log")
    # the daemon's own role token (the session Consul has ACLs on); a made-up one on a Consul without ACLs
    token = (proc.env or {}).get("CONSUL_HTTP_TOKEN") or token
    proc.env = {**(proc.env or {}), "CONSUL_HTTP_TOKEN": token, "SOME_API_KEY": token}
    proc.start()
    try:
        env = caddy_environ(caddy_dir, proc)
        assert token not in "\0".join(f"{k}={v}" for k, v in env.items())
        assert "CONSUL_HTTP_TOKEN" not in env and "SOME_API_KEY" not in env
        assert env["HOME"] == str(caddy_dir)  # its own state folder, as before
    finally:
        proc.stop()
        stop_caddy_dir(caddy_dir)
