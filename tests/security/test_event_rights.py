"""Issue 24 item 5: one node must not erase or rewrite the fleet's event log.

Before, every agent token had ``key_prefix "P/events/"`` write: a node overwrote or deleted any event,
the dashboard's audit records included (a recursive delete left none). Now each writer has a folder of
its own (``events/agent-<node>/``, ``events/controller/``, ``events/audit/``) and may write only there;
``meshop events`` merges them in time order, and the bound of 1000 holds per writer.

Real default-deny Consul, role tokens made by ``AclAdmin``.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Callable

import pytest

from meshop.client.events import follow_events, recent_events
from meshop.consul.events import EventLog
from meshop.consul.store import KVStore, TxnOp
from meshop.errors import ConsulAccessDenied
from meshop.model import keys

Store = Callable[..., KVStore]


@pytest.fixture
def as_role(role_config) -> Store:
    return lambda role, node=None: KVStore(role_config(role, node))


def denied(call: Callable[[], object]) -> None:
    with pytest.raises(ConsulAccessDenied):
        call()


def test_an_agent_cannot_erase_or_rewrite_other_writers_events(store: KVStore, as_role: Store, prefix: str) -> None:
    n1, n2 = f"{prefix}-n1", f"{prefix}-n2"
    audit = EventLog(as_role("operator"), "dashboard").append("Cordoned", f"node/{n2}", "by the dashboard")
    EventLog(as_role("agent", n2), f"agent/{n2}").append("Pulled", "service/web", "image pulled")
    EventLog(as_role("controller"), "controller").append("Scheduled", "service/web", f"on {n2}")
    before = {k: store.get(k).value for k in store.keys(keys.EVENTS)}  # type: ignore[union-attr]
    assert len(before) == 3
    agent = as_role("agent", n1)
    for key in before:
        denied(lambda k=key: agent.put(k, '{"kind": "Forged"}'))  # on main: overwritten
        denied(lambda k=key: agent.delete(k))
        denied(lambda k=key: agent.transact([TxnOp.delete(k)]))
    denied(lambda: agent.put(keys.events_of(keys.AUDIT_EVENTS) + "99999999999999999999-x", '{"kind": "Forged"}'))
    denied(lambda: agent.delete_tree(keys.EVENTS))  # on main: every event gone
    assert {k: store.get(k).value for k in store.keys(keys.EVENTS)} == before  # type: ignore[union-attr]
    assert any(e.kind == "Cordoned" and e.time == audit.time for e in EventLog(store, "cli").recent())


def test_each_writer_appears_in_meshop_events_and_the_bound_is_per_writer(as_role: Store, prefix: str) -> None:
    n1 = f"{prefix}-n1"
    clock = iter(float(t) for t in range(1_000, 2_000))
    agent_log = EventLog(as_role("agent", n1), f"agent/{n1}", max_events=3, clock=lambda: next(clock))
    controller_log = EventLog(as_role("controller"), "controller", max_events=3, clock=lambda: next(clock))
    audit_log = EventLog(as_role("operator"), "dashboard", max_events=3, clock=lambda: next(clock))
    controller_log.append("Scheduled", "service/web", "first")
    audit_log.append("Restarted", "service/web", "by a person")
    for i in range(5):
        agent_log.append("Started", "service/web", f"replica {i}")
    shown = recent_events(as_role("readonly"), 50)
    assert [e.event.message for e in shown] == ["first", "by a person", "replica 2", "replica 3", "replica 4"]
    assert len(as_role("readonly").keys(keys.events_of(keys.agent_events(n1)))) == 3  # its own bound only


def _forge(agent: KVStore, folder: str, stamp: str, **event: object) -> str:
    """An event written by hand into ``folder`` (what a compromised node's token may write there)."""
    key = f"{keys.events_of(folder)}{stamp}-f{secrets.token_hex(2)}"
    body = {"kind": "Cordoned", "object": "node/n2", "message": "by alice", "component": "dashboard", **event}
    agent.put(key, json.dumps(body))
    return key


def _stamp(at: float) -> str:
    return f"{int(at * 1e9):020d}"


def test_an_agent_cannot_pose_as_another_writer_from_its_own_folder(as_role: Store, prefix: str) -> None:
    """n1 may write ``events/agent-n1/``; before, what it wrote there was shown as whatever its body said:
    a ``Cordoned … dashboard`` audit record, a controller event, another node's, and an event whose key
    sorts it last while it shows an old time."""
    n1, n2 = f"{prefix}-n1", f"{prefix}-n2"
    agent = as_role("agent", n1)
    folder = keys.agent_events(n1)
    now = time.time()
    real = EventLog(as_role("operator"), "dashboard").append("Cordoned", "node/n2", "cordoned by carol")
    own = EventLog(agent, f"agent/{n1}").append("Pulled", "service/web", "image pulled")
    _forge(agent, folder, _stamp(now), time=now)  # the audit folder's component
    _forge(agent, folder, _stamp(now), time=now, component="controller", kind="NodeLost")
    _forge(agent, folder, _stamp(now), time=now, component=f"agent/{n2}", kind="Crashed")
    _forge(agent, folder, "09999999999999999999", time=now - 3600, component=f"agent/{n1}", message="sorted last")
    readonly = as_role("readonly")
    for shown in ([e.event for e in recent_events(readonly, 50)], EventLog(readonly, "cli").recent(50)):
        assert [(e.component, e.message) for e in shown] == [
            ("dashboard", "cordoned by carol"),
            (f"agent/{n1}", "image pulled"),
        ], shown  # before: the four forgeries too, as the dashboard's, the controller's and n2's
        assert [e.time for e in shown] == [real.time, own.time]


def test_a_future_dated_event_does_not_silence_meshop_events_follow(as_role: Store, prefix: str) -> None:
    """``meshop events --follow`` goes on from the newest event shown; before, it showed only events that
    sort after that one, so one event n1 dated years ahead (in its own folder, its own name) kept every
    later event from being shown."""
    n1 = f"{prefix}-n1"
    later = time.time() + 10 * 365 * 86400
    _forge(as_role("agent", n1), keys.agent_events(n1), _stamp(later), time=later, component=f"agent/{n1}")
    readonly = as_role("readonly")
    newest = recent_events(readonly, 1)
    assert [e.event.time for e in newest] == [later]  # shown, as n1's: its word about itself
    found: queue.Queue[str] = queue.Queue()

    def follow() -> None:
        for logged in follow_events(readonly, newest[-1].key, wait="1s"):
            found.put(logged.event.message)

    threading.Thread(target=follow, daemon=True).start()
    EventLog(as_role("controller"), "controller").append("Scheduled", "service/web", "placed after")
    assert found.get(timeout=20) == "placed after"  # before: queue.Empty, nothing more was ever shown
