"""Routes follow Consul's checks of the replicas at once, and fail open when only agents are unhealthy.

Issue 12 items 3 and 4: a dead node stayed in routes for the whole grace period although its replicas'
checks had failed within seconds, and a one-node fleet with a hung agent lost its route altogether.
"""

from __future__ import annotations

import pytest

from meshop.consul.services import CheckState
from meshop.operator.replicas import ReplicaHealth, agent_hosts, parse_replica_id, replica_health
from meshop.operator.routes import build_routes, fail_open_note
from meshop.operator.view import NodeState, RouteSpec
from tests.unit.operator.helpers import assignment, node, observed, service

WEB = service("web", route=RouteSpec("web.example.com", "/", 80))
A1, A2 = assignment(WEB, "n1"), assignment(WEB, "n2")
SEEN = {"n1": observed(A1, port=30000), "n2": observed(A2, port=31000)}
UP1, UP2 = ("n1", "10.0.0.1", 30000), ("n2", "10.0.0.2", 31000)
READY, SUSPECT, NOT_READY = NodeState.READY, NodeState.SUSPECT, NodeState.NOT_READY


def hc(node: str, service: str, replica: int, status: str, consul_node: str = "c1") -> CheckState:
    sid = f"meshop-{node}-{service}-{replica}"
    return CheckState(consul_node, f"{sid}:health", sid, service, status)


def serf(consul_node: str, status: str) -> CheckState:
    return CheckState(consul_node, "serfHealth", "", "", status)


@pytest.mark.parametrize(
    ("service_id", "service_name", "expected"),
    [
        ("meshop-n1-web-0", "web", ("n1", 0)),
        ("meshop-node-a-web-12", "web", ("node-a", 12)),
        ("meshop-a-web-web-3", "web", ("a-web", 3)),
        ("meshop-n1-web-x", "web", None),
        ("meshop-n1-webx-0", "web", None),
        ("meshop-agent-n1", "meshop-agent", None),
        ("meshop-metrics-controller-c1", "meshop-metrics", None),
        ("other-n1-web-0", "web", None),
        ("meshop--web-0", "web", None),
        ("meshop-n1-web-²", "web", None),  # isdigit() is True and int() raises: a crash of every pass once
        ("meshop-n1-web-١٢", "web", None),  # int() would take it
        ("meshop-n1-web-+1", "web", None),
        ("meshop-n1-web- 1", "web", None),
        ("meshop-n1-web-1_0", "web", None),
        ("meshop-n1-web-", "web", None),
        ("meshop-n1-web-" + "9" * 5000, "web", None),
        ("meshop-n1-web-99999", "web", None),
        ("meshop-n1-web-0007", "web", ("n1", 7)),
    ],
    ids=lambda v: str(v),
)
def test_parse_replica_id(service_id: str, service_name: str, expected: tuple[str, int] | None) -> None:
    assert parse_replica_id(service_id, service_name) == expected


@pytest.mark.parametrize(
    ("checks", "hosts", "expected", "dead"),
    [
        pytest.param([hc("n1", "web", 0, "passing")], {"n1": "c1"}, {"web": {"n1": "passing"}}, set(), id="passing"),
        pytest.param(
            [hc("n1", "web", 0, "warning")], {"n1": "c1"}, {"web": {"n1": "passing"}}, set(), id="warning-serves"
        ),
        pytest.param(
            [hc("n1", "web", 0, "critical"), hc("n1", "web", 1, "passing")],
            {"n1": "c1"},
            {"web": {"n1": "passing"}},
            set(),
            id="one-passing-replica-is-enough",
        ),
        pytest.param(
            [hc("n1", "web", 0, "critical"), hc("n1", "web", 1, "critical")],
            {"n1": "c1"},
            {"web": {"n1": "critical"}},
            set(),
            id="all-critical",
        ),
        pytest.param(
            [hc("n2", "web", 0, "passing", "c2"), serf("c2", "critical"), serf("c1", "passing")],
            {"n1": "c1", "n2": "c2"},
            {"web": {"n2": "critical"}},
            {"n2"},
            id="serf-critical-fails-its-replicas-and-kills-the-node",
        ),
        pytest.param([serf("c2", "critical")], {"n1": "c1"}, {}, set(), id="serf-of-another-node"),
        # issue 24: a check registered on another Consul node than the node's agent is another node's word
        pytest.param(
            [hc("n2", "web", 0, "critical", "c1"), hc("n1", "web", 0, "passing", "c1")],
            {"n1": "c1", "n2": "c2"},
            {"web": {"n1": "passing"}},
            set(),
            id="forged-from-another-consul-node",
        ),
        pytest.param([hc("n3", "web", 0, "critical", "c3")], {}, {}, set(), id="no-agent-no-consul-verdict"),
    ],
)
def test_replica_health(checks, hosts, expected, dead) -> None:  # type: ignore[no-untyped-def]
    """``hosts``: where each meshop node's agent is registered (``agent_hosts``)."""
    health = replica_health(checks, hosts)
    assert {s: dict(per) for s, per in health.replicas.items()} == expected
    assert health.dead == dead


def test_an_agent_registered_on_two_consul_nodes_has_no_host() -> None:
    """A second ``meshop-agent-n2`` elsewhere (any agent token may register one) proves nothing."""
    assert agent_hosts([("n1", "c1"), ("n2", "c2"), ("n2", "evil"), ("n1", "c1")]) == {"n1": "c1"}
    assert replica_health([serf("evil", "critical")], agent_hosts([("n2", "c2"), ("n2", "evil")])).dead == set()


@pytest.mark.parametrize(
    ("states", "health", "expected", "fail_open"),
    [
        pytest.param({}, ReplicaHealth(), [UP1, UP2], False, id="no-consul-data-as-before"),
        pytest.param(
            {"n1": SUSPECT},
            ReplicaHealth({"web": {"n1": "critical"}}),
            [UP2],
            False,
            id="replica-checks-failing-on-an-unhealthy-agent-drop-at-once",
        ),
        pytest.param(
            {},
            ReplicaHealth({"web": {"n1": "critical"}}),
            [UP1, UP2],
            False,
            id="a-healthy-agent-is-trusted-over-a-check-not-yet-run",
        ),
        pytest.param({}, ReplicaHealth(dead=frozenset({"n2"})), [UP1], False, id="dead-machine-drops-at-once"),
        pytest.param(
            {"n1": SUSPECT, "n2": SUSPECT},
            ReplicaHealth({"web": {"n1": "critical", "n2": "critical"}}),
            [],
            False,
            id="all-replicas-failing-no-fail-open",
        ),
        pytest.param(
            {"n1": NOT_READY, "n2": NOT_READY},
            ReplicaHealth({"web": {"n1": "passing", "n2": "passing"}}),
            [UP1, UP2],
            True,
            id="agents-down-replicas-pass-fail-open",
        ),
        pytest.param(
            {"n1": NOT_READY, "n2": NOT_READY},
            ReplicaHealth({"web": {"n1": "passing", "n2": "critical"}}),
            [UP1],
            True,
            id="fail-open-only-to-passing-replicas",
        ),
        pytest.param(
            {"n1": NOT_READY},
            ReplicaHealth({"web": {"n1": "passing", "n2": "passing"}}),
            [UP2],
            False,
            id="a-ready-upstream-left-no-fail-open",
        ),
        pytest.param(
            {"n1": NOT_READY, "n2": NOT_READY},
            ReplicaHealth(),
            [],
            False,
            id="no-evidence-no-fail-open",
        ),
        pytest.param(
            {"n1": NOT_READY, "n2": NOT_READY},
            ReplicaHealth({"web": {"n1": "passing"}}, dead=frozenset({"n1"})),
            [],
            False,
            id="dead-machine-never-kept",
        ),
    ],
)
def test_routes_follow_replica_health(states, health, expected, fail_open) -> None:  # type: ignore[no-untyped-def]
    nodes = {name: node(name, states.get(name, READY)) for name in ("n1", "n2")}
    routes, _ = build_routes({"web": WEB}, {"web": {"n1": A1, "n2": A2}}, {"web": SEEN}, nodes, health)
    route = routes["web.example.com"]
    assert [(u.node, u.address, u.port) for u in route.upstreams] == expected
    assert route.fail_open is fail_open
    assert bool(fail_open_note(route)) is fail_open
    assert route.to_dict().get("failOpen", False) is fail_open


def test_status_says_when_a_route_fails_open() -> None:
    from meshop.operator.plan import ClusterState, plan

    nodes = {name: node(name, NOT_READY) for name in ("n1", "n2")}
    health = ReplicaHealth({"web": {"n1": "passing", "n2": "passing"}})
    state = ClusterState({"web": WEB}, nodes, {"web": {"n1": A1, "n2": A2}}, {"web": SEEN}, health=health)
    degraded = plan(state, 100.0).statuses["web"].condition("Degraded")
    assert degraded is not None and (degraded.status, degraded.reason) == ("True", "RouteFailOpen")
    assert "(n1)" in degraded.message and "Consul checks" in degraded.message
