"""Terminal output: KV content that anyone with write access to a key chose is shown, never obeyed.

A compromised node writes its record, its observed errors and events; a team writes its documents.
Before issue 11 ``meshop status``, ``describe`` and ``events`` printed their escape sequences raw (the
operator's screen cleared, lines rewritten, the window retitled).
"""

from __future__ import annotations

import json
import time

import pytest

from meshop.cli.main import run
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import Capacity, Condition, Event, NodeRecord, ServiceStatus, dumps
from tests.support import acl
from tests.support.consul_server import ConsulServer

CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;owned\x07"  # retitle the window
CSI_C1 = "\x9b1A"  # cursor up, as one C1 character


def test_status_describe_and_events_print_escapes_not_control_sequences(
    consul_server: ConsulServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = consul_server.addr
    store = KVStore(ConsulConfig.from_env({}, addr=addr, token=consul_server.token, prefix=prefix, timeout=5.0))
    doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": "web"}}
    doc["spec"] = {"image": "busybox:1", "env": [{"name": "GREETING", "value": f"hi{CLEAR}"}]}
    store.put(keys.desired_service("web"), json.dumps(doc))
    hostile = f"all good{CLEAR}{TITLE}{CSI_C1}\rFAKE: Healthy"
    condition = Condition("Ready", "False", "Unhealthy", hostile, time.time(), 1)
    store.put(keys.service_status("web"), dumps(ServiceStatus("web", 10**9, (condition,), image=f"img{TITLE}")))
    record = NodeRecord(f"n{TITLE}", f"10.0.0.1{CLEAR}", {"zone": CSI_C1}, Capacity(1, 1), version="x")
    store.put(keys.node("n1"), dumps(record))
    event = Event(time.time(), f"Scheduled{CLEAR}", "service/web", hostile, "controller")  # where it may lie
    store.put(f"{keys.events_of(keys.CONTROLLER_EVENTS)}{int(event.time * 1e9):020d}-x", dumps(event))

    outputs = []
    for args in (["status"], ["describe", "service", "web"], ["events"], ["get", "nodes"]):
        token = acl.token_for(addr, prefix, args) or ""  # the read-only role
        code = run(["--consul-addr", addr, "--prefix", prefix, "--token", token, *args])
        out = capsys.readouterr().out
        assert code == 0, args
        outputs.append(out)
        for raw in ("\x1b", "\x07", "\x9b", "\r"):
            assert raw not in out, (args, raw, out)
    assert "\\x1b[2J" in outputs[0] and "\\x1b[2J" in outputs[2]  # shown, as text
    assert "\\x1b]0;owned\\x07" in outputs[1]
