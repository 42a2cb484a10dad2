"""The whole-cluster plan: invalid documents, deletion, atomic moves, events; convergence as a property."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshop.errors import Violation
from meshop.model.records import Observed
from meshop.operator.moving import RebalanceInput
from meshop.operator.plan import ClusterState, PlannedEvent, ServiceWrite, apply, diff, plan
from meshop.operator.rebalance import AUTO, MANUAL, RebalanceSettings
from meshop.operator.view import NodeState, RouteSpec
from tests.unit.operator.helpers import assignment, invalid, node, observed, service

NOW = 5000.0
NODES = {"n1": node("n1"), "n2": node("n2")}


def converge(state: ClusterState, now: float = NOW) -> ClusterState:
    return apply(state, diff(state, plan(state, now)))


def test_new_service_is_scheduled_with_status_route_and_event() -> None:
    web = service("web", route=RouteSpec("web.example.com"))
    state = ClusterState({"web": web}, NODES)
    changes = diff(state, plan(state, NOW))
    assert changes.services == (
        ServiceWrite(
            "web",
            put=(assignment(web, "n1"),),
            events=(PlannedEvent("Scheduled", "service/web", "placed 1 replica(s) on n1=1"),),
        ),
    )
    assert [s.name for s in changes.put_status] == ["web"]
    assert [r.host for r in changes.put_routes] == ["web.example.com"]


def test_converged_state_plans_no_writes() -> None:
    web = service("web", replicas=2, route=RouteSpec("web.example.com"))
    state = converge(ClusterState({"web": web}, NODES))
    assert diff(state, plan(state, NOW + 60)).empty


def test_spec_update_rewrites_assignments_in_place() -> None:
    v1 = service("web", 10, replicas=2)
    state = converge(ClusterState({"web": v1}, NODES))
    v2 = service("web", 11, image="img:2", replicas=2)
    changes = diff(state, plan(ClusterState({"web": v2}, NODES, state.assignments, statuses=state.statuses), NOW))
    assert changes.services == (ServiceWrite("web", put=(assignment(v2, "n1"), assignment(v2, "n2"))),)


def test_invalid_update_leaves_assignments_untouched_and_reports_once() -> None:
    good = service("web", 10)
    state = converge(ClusterState({"web": good}, NODES))
    bad = invalid("web", 11, Violation("spec.image", "is required"), running=good)
    state = ClusterState({"web": bad}, NODES, state.assignments, statuses=state.statuses)
    changes = diff(state, plan(state, NOW))
    assert changes.services == (
        ServiceWrite("web", events=(PlannedEvent("Invalid", "service/web", "generation 11: spec.image: is required"),)),
    )
    assert changes.put_status[0].condition("Valid").status == "False"
    state = apply(state, changes)
    assert state.assignments == {"web": {"n1": assignment(good, "n1")}}
    assert diff(state, plan(state, NOW + 1)).empty  # no second Invalid event for the same generation


def test_invalid_service_is_not_moved_even_when_its_node_is_lost() -> None:
    good = service("web", 10)
    bad = invalid("web", 11, Violation("spec.image", "is required"), running=good)
    nodes = {"n1": node("n1", NodeState.NOT_READY), "n2": node("n2")}
    state = ClusterState({"web": bad}, nodes, {"web": {"n1": assignment(good, "n1")}})
    target = plan(state, NOW)
    assert target.assignments == {"web": {"n1": assignment(good, "n1")}}
    assert target.statuses["web"].condition("Ready").reason == "NodeLost"


def test_deleting_the_document_removes_assignments_status_and_route() -> None:
    web = service("web", replicas=2, route=RouteSpec("web.example.com"))
    state = converge(ClusterState({"web": web}, NODES))
    nodes = state.node_statuses
    state = ClusterState(
        {}, NODES, state.assignments, statuses=state.statuses, routes=state.routes, node_statuses=nodes
    )
    changes = diff(state, plan(state, NOW))
    assert changes.services == (ServiceWrite("web", delete=("n1", "n2")),)
    assert changes.delete_status == ("web",)
    assert changes.delete_routes == ("web.example.com",)
    assert apply(state, changes) == ClusterState({}, NODES, node_statuses=nodes)


def test_node_loss_moves_in_one_unit_with_its_event() -> None:
    web = service("web")
    nodes = {"n1": node("n1", NodeState.NOT_READY), "n2": node("n2")}
    state = ClusterState({"web": web}, nodes, {"web": {"n1": assignment(web, "n1")}})
    changes = diff(state, plan(state, NOW))
    assert changes.services == (
        ServiceWrite(
            "web",
            put=(assignment(web, "n2"),),
            delete=("n1",),
            events=(PlannedEvent("Rescheduled", "service/web", "moved off n1 (NodeLost); now on n2=1"),),
        ),
    )


def test_drain_keeps_the_old_copy_on_its_old_spec_until_the_new_one_is_ready() -> None:
    v1 = service("web", 10)
    v2 = service("web", 11, image="img:2")
    nodes = {"n1": node("n1", drain=True), "n2": node("n2")}
    old = assignment(v1, "n1")
    state = ClusterState({"web": v2}, nodes, {"web": {"n1": old}}, {"web": {"n1": observed(old)}})
    target = plan(state, NOW)
    assert target.assignments["web"] == {"n1": old, "n2": assignment(v2, "n2")}
    assert (
        target.statuses["web"]
        .condition("Scheduled")
        .message.endswith("keeping 1 copy(ies) on n1 (draining) until replacements are Ready")
    )

    state = apply(state, diff(state, target))
    new = assignment(v2, "n2")
    state = ClusterState(
        {"web": v2}, nodes, state.assignments, {"web": {"n1": observed(old), "n2": observed(new)}}, state.statuses
    )
    changes = diff(state, plan(state, NOW + 5))
    assert changes.services == (
        ServiceWrite(
            "web",
            delete=("n1",),
            events=(PlannedEvent("Rescheduled", "service/web", "moved off n1 (draining); now on n2=1"),),
        ),
    )


# --- property: re-planning after applying a plan changes nothing ------------------------------------

NODE_NAMES = ["n1", "n2", "n3", "n4"]
SERVICE_NAMES = ["a", "b", "c", "d", "e"]

node_strategy = st.builds(
    lambda name, state, cordon, drain, memory, label, priv: node(
        name, state, cordon=cordon, drain=drain, memory=memory, labels={"disk": label}, allow_privileged=priv
    ),
    st.sampled_from(NODE_NAMES),
    st.sampled_from(list(NodeState)),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0, 2, 4, 8]),
    st.sampled_from(["ssd", "hdd"]),
    st.booleans(),
)


@st.composite
def clusters(draw: st.DrawFn) -> ClusterState:
    nodes = {v.name: v for v in draw(st.lists(node_strategy, max_size=4, unique_by=lambda v: v.name))}
    services = {}
    for name in draw(st.lists(st.sampled_from(SERVICE_NAMES), unique=True, max_size=5)):
        services[name] = service(
            name,
            draw(st.integers(1, 3)),
            replicas=draw(st.integers(0, 4)),
            spread=draw(st.booleans()),
            memory=draw(st.sampled_from([0, 1, 3])),
            node=draw(st.sampled_from([None, None, None, "n1", "n5"])),
            node_selector=draw(st.sampled_from([{}, {}, {"disk": "ssd"}])),
            group=draw(st.sampled_from([None, None, "g"])),
            privileged=draw(st.booleans()),
        )
        if draw(st.integers(0, 9)) == 0:
            services[name] = invalid(name, 9, Violation("spec", "broken"), running=service(name, 1))
    assignments: dict = {}
    observed_: dict[str, dict[str, Observed]] = {}
    for name in draw(st.lists(st.sampled_from(SERVICE_NAMES), unique=True, max_size=5)):
        old = service(name, 1)
        for node_name in draw(st.lists(st.sampled_from([*NODE_NAMES, "gone"]), unique=True, max_size=3)):
            a = assignment(old, node_name, draw(st.integers(1, 3)))
            assignments.setdefault(name, {})[node_name] = a
            if draw(st.booleans()):
                observed_.setdefault(name, {})[node_name] = observed(a, draw(st.integers(0, a.replicas)))
    return ClusterState(services, nodes, assignments, observed_)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_replanning_after_applying_a_plan_changes_nothing(state: ClusterState) -> None:
    once = apply(state, diff(state, plan(state, NOW)))
    again = diff(once, plan(once, NOW + 30))
    assert again.empty, again


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_plans_respect_the_hard_rules(state: ClusterState) -> None:
    target = plan(state, NOW)
    for name, placement in target.placements.items():
        w = state.services[name].workload
        assert w is not None
        for node_name, count in placement.placed.items():
            view = state.nodes[node_name]
            assert view.state is not NodeState.NOT_READY
            assert w.node in (None, node_name)
            assert all(view.labels.get(k) == v for k, v in w.node_selector.items())
            assert not w.privileged or view.allow_privileged
            if w.spread and not w.group:
                assert count == 1
        assert placement.placed_count <= w.replicas
        new = {n for n in placement.placed if n not in state.assignments.get(name, {})}
        for node_name in new:  # new work only where new work may go
            view = state.nodes[node_name]
            assert view.state is NodeState.READY and not view.cordon and not view.drain
    for name, service_ in state.services.items():
        if not service_.valid:
            assert target.assignments.get(name, {}) == state.assignments.get(name, {})


def test_scheduled_event_counts_the_replicas_placed_not_the_replicas_wanted() -> None:
    web = service("web", replicas=3)  # spread: one per node, two nodes
    changes = diff(ClusterState({"web": web}, NODES), plan(ClusterState({"web": web}, NODES), NOW))
    assert changes.services[0].events == (
        PlannedEvent("Scheduled", "service/web", "placed 2 of 3 replica(s) on n1=1, n2=1"),
    )


def _agents_ready(state: ClusterState) -> ClusterState:
    """Every assigned copy reports Ready (what agents publish after starting it)."""
    seen = {name: {n: observed(a) for n, a in per.items()} for name, per in state.assignments.items()}
    return replace(state, observed=seen)


def test_rebalancing_is_start_first_routed_before_the_old_copy_goes_one_move_at_a_time() -> None:
    """n3 returns: the controller moves one replica per pass budget onto it; the source keeps its copy until
    the new one is Ready in observed state *and* listed in routes/<host> as KV holds it."""
    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    svcs = {s: service(s, replicas=3, spread=False, route=RouteSpec(f"{s}.example.com")) for s in ("a", "b")}
    placed = {s: {"n1": assignment(svcs[s], "n1", 2), "n2": assignment(svcs[s], "n2", 1)} for s in svcs}
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), stable=dict.fromkeys(three, 600.0))
    state = _agents_ready(ClusterState(svcs, three, placed, rebalance=given))
    state = converge(state)  # routes and statuses for what runs; the first move starts in this pass
    assert state.assignments["a"]["n3"].replicas == 1 and state.assignments["a"]["n1"].replicas == 2
    assert "n3" not in state.assignments["b"]  # one move in flight cluster-wide
    assert [(m.service, m.source, m.target) for m in state.rebalance.status.moves] == [("a", "n1", "n3")]
    history = []
    for _ in range(8):
        state = _agents_ready(state)
        target = plan(state, NOW)
        history.append([e.kind for per in target.events.values() for e in per])
        before = {s: sum(a.replicas for a in per.values()) for s, per in state.assignments.items()}
        state = apply(state, diff(state, target))
        for s, per in state.assignments.items():  # never fewer copies assigned than wanted
            assert sum(a.replicas for a in per.values()) >= 3, (s, before)
    counts = {s: {n: a.replicas for n, a in per.items()} for s, per in state.assignments.items()}
    assert counts == {s: {"n1": 1, "n2": 1, "n3": 1} for s in svcs}
    assert state.rebalance.status.moves == () and state.rebalance.status.pending == ()
    kinds = [k for per in history for k in per]
    assert kinds.count("Rebalanced") == 2 and kinds.count("RebalanceStarted") == 1  # a's start was in converge
    # the pass in which a's copy was first Ready on n3 did not drop n1's copy: routed first
    first_done = next(i for i, k in enumerate(history) if "Rebalanced" in k)
    assert first_done >= 1


def test_manual_policy_moves_only_after_a_request_and_marks_it_handled() -> None:
    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    a = service("a", replicas=3, spread=False, rebalance=MANUAL)
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), stable=dict.fromkeys(three, 600.0))
    state = _agents_ready(ClusterState({"a": a}, three, {"a": {"n1": assignment(a, "n1", 3)}}, rebalance=given))
    for _ in range(3):
        state = _agents_ready(converge(state))
    assert set(state.assignments["a"]) == {"n1"}
    assert [(m.source, m.target) for m in state.rebalance.status.pending] == [("n1", "n2"), ("n1", "n3")]
    state = replace(state, rebalance=replace(state.rebalance, request=77))
    for _ in range(10):
        state = _agents_ready(converge(state))
    assert {n: x.replicas for n, x in state.assignments["a"].items()} == {"n1": 1, "n2": 1, "n3": 1}
    assert state.rebalance.status.handled == 77 and state.rebalance.status.pending == ()


def test_a_move_whose_target_fails_is_abandoned_and_the_extra_copy_trimmed() -> None:
    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    a = service("a", replicas=2, spread=False)
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), stable=dict.fromkeys(three, 600.0))
    state = _agents_ready(ClusterState({"a": a}, three, {"a": {"n1": assignment(a, "n1", 2)}}, rebalance=given))
    state = converge(state)
    assert state.rebalance.status.moves and state.assignments["a"]["n1"].replicas == 2
    moved_to = state.rebalance.status.moves[0].target
    lost = {**three, moved_to: node(moved_to, NodeState.SUSPECT)}
    state = replace(state, nodes=lost, rebalance=replace(state.rebalance, stable={"n1": 600.0}))
    target = plan(state, NOW)
    assert target.rebalance.abandoned and "can no longer take it" in target.rebalance.abandoned[0][1]
    assert [e.kind for e in target.events["a"]] == ["RebalanceAbandoned"]
    state = apply(state, diff(state, target))
    assert state.rebalance.status.moves == ()
    assert {n: x.replicas for n, x in state.assignments["a"].items()} == {"n1": 2}  # the move is undone


def test_a_node_waiting_to_be_stable_asks_for_a_pass_when_it_is() -> None:
    """Nothing else wakes the controller when a returning node's window ends: the plan says when."""
    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    a = service("a", replicas=3, spread=False)
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), stable={"n1": 600.0, "n2": 600.0, "n3": 12.0})
    placed = {"a": {"n1": assignment(a, "n1", 2), "n2": assignment(a, "n2", 1)}}
    state = _agents_ready(ClusterState({"a": a}, three, placed, rebalance=given))
    target = plan(state, NOW)
    assert target.rebalance.started == () and "n3" in target.rebalance.status.waiting
    assert target.rebalance.wake_in == 18.0
    balanced = replace(state, assignments={"a": {n: assignment(a, n, 1) for n in three}})
    assert plan(balanced, NOW).rebalance.wake_in is None  # nothing would move there: no wake-up


def test_a_recorded_move_that_makes_no_sense_is_abandoned_not_followed() -> None:
    """status/rebalance is read back at every pass (and by a new leader): a move of a deleted service, a
    second move of one service, a move onto an unknown node or off a node without a copy is dropped."""
    from meshop.model.records import RebalanceMove, RebalanceStatus

    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    a = service("a", replicas=2, spread=False, rebalance="off")
    b = service("b", replicas=2, spread=False)
    record = RebalanceStatus(
        "auto",
        moves=(
            RebalanceMove("gone", "n1", "n2"),
            RebalanceMove("a", "n1", "n3"),  # policy off
            RebalanceMove("b", "n9", "n3"),  # no copy on n9
            RebalanceMove("b", "n1", "n7"),  # unknown target (and a second move of b)
        ),
    )
    placed = {"a": {"n1": assignment(a, "n1", 2)}, "b": {"n1": assignment(b, "n1", 1), "n2": assignment(b, "n2", 1)}}
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), record, dict.fromkeys(three, 600.0))
    target = plan(_agents_ready(ClusterState({"a": a, "b": b}, three, placed, rebalance=given)), NOW)
    assert [(m.service, why) for m, why in target.rebalance.abandoned] == [
        ("gone", "service deleted or invalid"),
        ("a", "rebalance: off"),
        ("b", "n9 no longer runs a copy"),
        ("b", "n7 can no longer take it"),
    ]
    assert {n: x.replicas for n, x in target.assignments["a"].items()} == {"n1": 2}
    # what is in flight now is only b's own, freshly planned move (n1 runs 3 replicas in all, n3 none)
    assert [(m.service, m.source, m.target, m.started) for m in target.rebalance.status.moves] == [
        ("b", "n1", "n3", NOW)
    ]


def test_the_source_copy_stays_until_routes_in_kv_list_the_target() -> None:
    """Ready in observed state is not enough: the gateway must have been told (routes/<host> as KV holds
    it lists the target) before the move's source copy goes."""
    from meshop.model.records import RebalanceMove, RebalanceStatus

    three = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}
    a = service("a", replicas=3, spread=False, route=RouteSpec("a.example.com"))
    placed = {"a": {"n1": assignment(a, "n1", 2), "n2": assignment(a, "n2", 1), "n3": assignment(a, "n3", 1)}}
    record = RebalanceStatus("auto", moves=(RebalanceMove("a", "n1", "n3", "", 1.0, "auto"),))
    given = RebalanceInput(RebalanceSettings(AUTO, 30.0, 0.0, 1), record, dict.fromkeys(three, 600.0))
    state = _agents_ready(ClusterState({"a": a}, three, placed, rebalance=given))  # n3's copy Ready
    target = plan(state, NOW)  # routes in KV: none yet
    assert target.assignments["a"]["n1"].replicas == 2 and target.rebalance.done == ()
    assert any(u.node == "n3" for u in target.routes["a.example.com"].upstreams)  # written in this pass
    state = apply(state, diff(state, target))
    target = plan(state, NOW)  # now KV lists n3: the source's extra copy goes
    assert target.assignments["a"]["n1"].replicas == 1
    assert [(m.source, m.target) for m in target.rebalance.done] == [("n1", "n3")]


def test_a_relocation_moves_a_stateful_service_stop_first_in_one_unit() -> None:
    """``meshop volume restore --to-node n2``: the copy on n1 is deleted in the write that puts n2's."""
    db = service("db", failover="none")
    nodes = {"n1": node("n1"), "n2": node("n2")}
    state = ClusterState({"db": db}, nodes, {"db": {"n1": assignment(db, "n1")}}, homes={"db": "n1"})
    assert diff(state, plan(state, NOW)).services == ()  # stateful: stays on its node
    moved = replace(state, relocations={"db": "n2"})
    (write,) = diff(moved, plan(moved, NOW)).services
    assert write.put == (assignment(db, "n2"),) and write.delete == ("n1",)
