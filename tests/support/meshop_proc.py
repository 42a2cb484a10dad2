"""Run meshop daemons (``python -m meshop ...``) as real subprocesses for integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.procs import Process


def meshop_process(consul_addr: str, prefix: str, args: list[str], log_path: Path) -> Process:
    """A not-yet-started ``meshop --consul-addr A --prefix P <args>`` process; stop it by PID.

    Every node of a test cluster is 127.0.0.1, so controllers and gateways run with ``--local-cluster``
    (``MESHOP_LOCAL_CLUSTER``); tests/security starts its own without it."""
    command = [sys.executable, "-m", "meshop", "--consul-addr", consul_addr, "--prefix", prefix, *args]
    return Process(command, log_path, env={"PYTHONUNBUFFERED": "1", "MESHOP_LOCAL_CLUSTER": "1"})
