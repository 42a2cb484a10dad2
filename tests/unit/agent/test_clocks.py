"""Wall-clock steps (NTP, a suspended VM) between passes restart, hold, drain and mark nothing: every
duration is on the injected monotonic clock, which alone ends holds and drains; the wall clock only
stamps records (``meshop/agent/clocks.py``, ``memory/ages.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from meshop.agent.clocks import Clocks
from meshop.agent.memory.ages import DockerTimes
from meshop.agent.planning.plan import Container
from meshop.agent.reconciler import AgentSettings
from tests.unit.agent.rig import NODE, SLEEP, FakeRuntime, Rig, make_rig

HOUR = 3600.0
STEPS = [pytest.param(HOUR, id="wall+1h"), pytest.param(-HOUR, id="wall-1h")]


@dataclass
class SteppedClocks:
    """A wall clock that can jump and a monotonic one that only moves forward."""

    wall_at: float = 1_800_000_000.0
    mono_at: float = 5_000.0

    def wall(self) -> float:
        return self.wall_at

    def mono(self) -> float:
        return self.mono_at

    def tick(self, seconds: float) -> None:
        """Time passes: both clocks move together."""
        self.wall_at += seconds
        self.mono_at += seconds

    @property
    def clocks(self) -> Clocks:
        return Clocks(wall=self.wall, mono=self.mono)


def stepped_rig(time: SteppedClocks, **settings: float) -> Rig:
    base = AgentSettings(node=NODE, advertise_addr="10.0.0.1", drain=settings.pop("drain", 0.0), **settings)
    return make_rig(runtime=FakeRuntime(wall=time.wall), clocks=time.clocks, settings=base)


def snapshot(rig: Rig) -> tuple[object, ...]:
    observed = {
        s: (r.ready, r.reason, [c.phase for c in r.containers]) for s in ("web", "slow") if (r := rig.observed(s))
    }
    return (
        sorted(rig.runtime.containers),
        list(rig.runtime.attempts),
        dict(rig.services.registered),
        observed,
        dict(rig.reconciler.memory.restarts.until),
        dict(rig.reconciler.memory.services.until),
    )


@pytest.mark.parametrize("step", STEPS)
def test_a_wall_clock_step_restarts_holds_and_marks_nothing(step: float) -> None:
    time = SteppedClocks()
    rig = stepped_rig(time)
    rig.assign("web", SLEEP, replicas=2)
    rig.assign("slow", {**SLEEP, "minReadySeconds": 30})
    rig.settle()
    time.tick(60)  # past minReadySeconds: every replica is Ready
    rig.settle()
    before = snapshot(rig)
    assert before[3] == {"web": (2, "", ["Ready", "Ready"]), "slow": (1, "", ["Ready"])}
    time.wall_at += step
    for _ in range(3):
        time.mono_at += 1.0
        rig.settle(2)
        assert snapshot(rig) == before
    record = rig.observed("web")
    assert record is not None  # records people read keep the wall clock, stepped or not
    assert rig.journal.written == [] or all(kind != "Crashed" for kind, _, _ in rig.journal.written)


@pytest.mark.parametrize("step", STEPS)
def test_a_hold_ends_by_the_monotonic_clock_only(step: float) -> None:
    time = SteppedClocks()
    rig = stepped_rig(time)
    rig.runtime.fail_create.add("bad")
    rig.assign("bad", SLEEP)
    rig.settle()
    assert rig.runtime.attempts == ["bad"]
    held_for = rig.reconciler.memory.next_release(time.mono())
    assert held_for is not None and held_for > 0
    time.wall_at += step  # a wall step neither ends the hold nor stretches it
    rig.settle()
    assert rig.runtime.attempts == ["bad"]
    assert rig.reconciler.memory.next_release(time.mono()) == pytest.approx(held_for)
    time.mono_at += held_for + 0.01
    rig.reconciler.reconcile()
    assert rig.runtime.attempts == ["bad", "bad"]  # retried once its hold ended, as before


@pytest.mark.parametrize("step", STEPS)
def test_a_drain_is_counted_on_the_monotonic_clock(step: float) -> None:
    """A start-first update keeps the old container ``drain`` seconds after the new one took over."""
    time = SteppedClocks()
    rig = stepped_rig(time, drain=30.0)
    update = {"update": {"strategy": "start-first"}}
    rig.assign("web", {**SLEEP, **update})
    rig.settle()
    (old,) = rig.runtime.containers
    rig.assign("web", {**SLEEP, **update, "args": ["120"]})
    rig.settle()  # the new container runs next to the old one
    time.tick(3)  # past minReadySeconds (2 s): it is Ready and takes over the registration, the drain begins
    rig.settle()
    assert len(rig.runtime.containers) == 2 and rig.registrar.promoted
    time.wall_at += step
    rig.settle()
    assert old in rig.runtime.containers  # not drained early (+1 h) nor kept for an hour (-1 h)
    time.mono_at += 31.0
    rig.settle()
    assert old not in rig.runtime.containers and len(rig.runtime.containers) == 1


@pytest.mark.parametrize(
    ("started", "age"),
    [
        pytest.param(1_800_000_000.0 - 50, 50.0, id="past-start-keeps-its-age"),
        pytest.param(1_800_000_000.0 + HOUR, 0.0, id="future-start-counts-as-now"),
        pytest.param(0.0, None, id="never-started-stays-zero"),
    ],
)
def test_docker_times_move_onto_the_monotonic_clock_once(started: float, age: float | None) -> None:
    times = DockerTimes()
    container = Container("c1", "web-0", "web", 0, "h", "h", 1, "img", "running", started_at=started)
    (moved,) = times.on_mono([container], wall=1_800_000_000.0, mono=100.0)
    assert moved.started_at == (0.0 if age is None else 100.0 - age)
    (again,) = times.on_mono([container], wall=1_800_000_000.0 - HOUR, mono=110.0)  # the wall clock stepped
    assert again.started_at == moved.started_at
