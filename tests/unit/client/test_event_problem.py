"""Which events a reader shows: the body must agree with the key it lies at (issue 24)."""

from __future__ import annotations

import pytest

from meshop.consul.events import event_problem
from meshop.model.records import Event

T = 1_796_000_000.123456
STAMP = f"{int(T * 1e9):020d}"


def event(component: str, at: float = T) -> Event:
    return Event(at, "Cordoned", "node/n2", "by alice", component)


@pytest.mark.parametrize(
    ("key", "body", "shown"),
    [
        (f"events/audit/{STAMP}-a", event("dashboard"), True),
        (f"events/audit/{STAMP}-a", event("cli"), True),
        (f"events/controller/{STAMP}-a", event("controller"), True),
        (f"events/agent-n1/{STAMP}-a", event("agent/n1"), True),
        (f"events/agent-my-node/{STAMP}-a", event("agent/my-node"), True),
        (f"events/{STAMP}-a", event("anything"), True),  # the older layout: no folder to check against
        (f"events/agent-n1/{STAMP}-a", event("dashboard"), False),  # n1 posing as the audit trail
        (f"events/agent-n1/{STAMP}-a", event("controller"), False),
        (f"events/agent-n1/{STAMP}-a", event("agent/n2"), False),
        (f"events/agent-n1/{STAMP}-a", event(""), False),
        (f"events/agent-n1/x/{STAMP}-a", event("agent/n1"), False),  # not a writer's folder
        ("events/agent-n1/99999999999999999999-a", event("agent/n1"), False),  # sorts last, shows T
        (f"events/agent-n1/{STAMP}", event("agent/n1"), True),
        (f"events/agent-n1/{STAMP}-a", event("agent/n1", 1e308), False),  # no OverflowError
        (f"events/agent-n1/{STAMP}-a", event("agent/n1", -1.0), False),
    ],
)
def test_an_event_is_shown_only_where_its_writer_writes_and_when_its_key_says(
    key: str, body: Event, shown: bool
) -> None:
    assert (event_problem(key, body) is None) == shown, event_problem(key, body)
