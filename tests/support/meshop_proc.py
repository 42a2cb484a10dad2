"""Run meshop daemons (``python -m meshop ...``) as real subprocesses for integration tests."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from meshop.agent.stateful.leases import LeaseDir
from tests.support import acl
from tests.support.procs import Process, wait_until


def meshop_process(consul_addr: str, prefix: str, args: list[str], log_path: Path) -> Process:
    """A not-yet-started ``meshop --consul-addr A --prefix P <args>`` process; stop it by PID.

    On an ACL-enabled Consul it runs with its role's token for ``prefix`` (``tests.support.acl.role_of``:
    a daemon its own, ``apply``/``delete``/``nodes`` the operator's, anything else the read-only one),
    passed as ``CONSUL_HTTP_TOKEN`` so it never shows in the process list. Every node of a test cluster is
    127.0.0.1, so controllers and gateways run with ``--local-cluster`` (``MESHOP_LOCAL_CLUSTER``);
    tests/security starts its own without it."""
    command = [sys.executable, "-m", "meshop", "--consul-addr", consul_addr, "--prefix", prefix, *args]
    token = acl.token_for(consul_addr, prefix, args) or ""
    return Process(
        command,
        log_path,
        env={
            "PYTHONUNBUFFERED": "1",
            "CONSUL_HTTP_TOKEN": token,
            "MESHOP_LOCAL_CLUSTER": "1",
            "MESHOP_TRUST_NODE_RECORDS": "1",
        },
    )


def fence_process(node: str, lease_dir: Path, log_path: Path) -> Process:
    """``meshop fence run`` as a real process (stopped by its PID), once its first heartbeat is written."""
    command = [sys.executable, "-m", "meshop", "fence", "run", "--node", node, "--lease-dir", str(lease_dir)]
    fence = Process(command, log_path, env={"PYTHONUNBUFFERED": "1"}).start()
    leases = LeaseDir(lease_dir)

    def beating() -> bool:
        assert fence.alive(), fence.log_tail()
        with contextlib.suppress(Exception):
            return leases.heartbeat() is not None
        return False

    try:
        wait_until(beating, 30, what="the fence's first heartbeat")
    except BaseException:
        fence.stop()
        raise
    return fence
