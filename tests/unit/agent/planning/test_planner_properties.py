"""Property tests: applying plans converges, and the converged state is exactly what was asked for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.agent.planning.plan import Container, ServiceTarget, World, restart_allowed
from meshop.agent.planning.planner import plan
from tests.unit.agent.fakes import FakeEngine

NAMES = ["a", "b", "c", "gone"]
HASHES = ["c1", "c2", "c3"]
STATES = ["created", "running", "restarting", "paused", "exited", "dead"]
POLICIES = ["no", "always", "unless-stopped", "on-failure"]


@st.composite
def desired_services(draw: st.DrawFn, strategies: tuple[str, ...]) -> dict[str, ServiceTarget]:
    names = draw(st.lists(st.sampled_from(NAMES[:3]), unique=True, max_size=3))
    return {
        name: ServiceTarget(
            name=name,
            replicas=draw(st.integers(0, 3)),
            spec_hash="s",
            generation=1,
            image=draw(st.sampled_from(["img:1", "img:2"])),
            config_hash=draw(st.sampled_from(HASHES)),
            strategy=draw(st.sampled_from(strategies)),  # type: ignore[arg-type]
            health_timeout=draw(st.sampled_from([0.5, 5.0])),
            has_health=draw(st.booleans()),
            restart=draw(st.sampled_from(POLICIES)),
        )
        for name in names
    }


@st.composite
def containers(draw: st.DrawFn, names: tuple[str, ...] = tuple(NAMES), max_replica: int = 4) -> list[Container]:
    count = draw(st.integers(0, 8))
    return [
        Container(
            id=f"c{i}",
            name=f"c{i}",
            service=draw(st.sampled_from(names)),
            replica=draw(st.integers(-1, max_replica)),
            spec_hash="s",
            config_hash=draw(st.sampled_from(HASHES)),
            generation=1,
            image="img:1",
            state=draw(st.sampled_from(STATES)),
            created_at=draw(st.floats(0, 99)),
            exit_code=draw(st.sampled_from([0, 1, 137])),
        )
        for i in range(count)
    ]


def assert_converged(engine: FakeEngine, desired: dict[str, ServiceTarget]) -> None:
    """Exactly one container per desired replica, with the desired config, running unless its policy says no."""
    by_replica: dict[tuple[str, int], list[Container]] = {}
    for container in engine.containers.values():
        by_replica.setdefault((container.service, container.replica), []).append(container)
    expected = {(name, r) for name, svc in desired.items() for r in range(svc.replicas)}
    assert set(by_replica) == expected
    for (name, _replica), found in by_replica.items():
        assert len(found) == 1, found
        (container,) = found
        svc = desired[name]
        assert container.config_hash == svc.config_hash
        if container.state == "exited":
            assert not restart_allowed(svc.restart, container.exit_code)
        else:
            assert container.state in ("running", "restarting", "paused")


def run_until_quiet(desired: dict[str, ServiceTarget], engine: FakeEngine, rounds: int) -> int:
    now = 100.0
    for round_number in range(rounds):
        world = World(
            now=now,
            images=frozenset(engine.images),
            healthy={cid: True for cid in engine.containers},
            promoted=dict(engine.promoted),
        )
        current = plan(desired, list(engine.containers.values()), world)
        if not current and current.requeue_after is None and dict(current.serving) == engine.registered:
            return round_number
        engine.apply(current, desired, now)
        now += 1.5  # longer than the drain
    raise AssertionError(f"no fixed point after {rounds} rounds")


@settings(max_examples=300, deadline=None)
@given(desired=desired_services(("stop-first",)), start=containers())
def test_stop_first_converges_in_one_application(desired: dict[str, ServiceTarget], start: list[Container]) -> None:
    engine = FakeEngine(images={"img:1", "img:2"})
    for container in start:
        engine.add(container)
    first = plan(desired, start, World(now=100.0, images=frozenset(engine.images)))
    engine.apply(first, desired, 100.0)
    again = plan(desired, list(engine.containers.values()), World(now=101.0, images=frozenset(engine.images)))
    assert not again, again.actions
    assert_converged(engine, desired)


@settings(max_examples=300, deadline=None)
@given(desired=desired_services(("stop-first", "start-first")), start=containers(), images=st.booleans())
def test_any_state_reaches_the_desired_fixed_point(
    desired: dict[str, ServiceTarget], start: list[Container], images: bool
) -> None:
    engine = FakeEngine(images={"img:1", "img:2"} if images else set())
    for container in start:
        engine.add(container)
    run_until_quiet(desired, engine, rounds=8)
    assert_converged(engine, desired)


@settings(max_examples=200, deadline=None)
@given(desired=desired_services(("stop-first", "start-first")), start=containers())
def test_from_cache_nothing_running_is_ever_removed(desired: dict[str, ServiceTarget], start: list[Container]) -> None:
    world = World(now=100.0, authoritative=False, images=frozenset({"img:1", "img:2"}))
    result = plan(desired, start, world)
    removed = [a.container for a in result.remove] + [c for r in result.replace for c in r.old]
    assert all(c.state in ("created", "dead") for c in removed), removed


@settings(max_examples=300, deadline=None)
@given(desired=desired_services(("start-first",)), start=containers(("a", "b"), 1), promoted=st.booleans())
def test_start_first_keeps_a_live_old_container_until_a_new_one_is_healthy(
    desired: dict[str, ServiceTarget], start: list[Container], promoted: bool
) -> None:
    """With auto-rollback and every probe failing, no live container of an assigned replica is ever removed."""
    for name, svc in desired.items():
        desired[name] = ServiceTarget(**{**svc.__dict__, "has_health": True, "auto_rollback": True})
    world = World(
        now=50.0,
        images=frozenset({"img:1", "img:2"}),
        healthy={c.id: False for c in start},
        promoted={c.id: 0.0 for c in start} if promoted else {},
    )
    result = plan(desired, start, world)
    for action in result.remove:
        container = action.container
        svc = desired.get(container.service)
        if svc is None or not 0 <= container.replica < svc.replicas or action.reason in ("rollback", "duplicate"):
            continue
        assert not container.alive, action
    for replaced in result.replace:
        assert not any(c.alive for c in replaced.old), replaced
