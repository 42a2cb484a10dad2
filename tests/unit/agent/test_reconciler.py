"""The reconcile pass with in-memory fakes for Docker and Consul (the real ones are exercised in
tests/integration/agent): cache on uncertainty, error isolation, secrets, write-on-change, state file."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from meshop.agent.planning.config import ContainerConfig
from meshop.agent.planning.plan import Container
from meshop.agent.reconciler import DENIED_QUICK_TRIES, retry_denial_soon
from meshop.consul.services import InstanceHealth
from meshop.consul.store import Listing
from meshop.errors import ConsulAccessDenied, ConsulError, ConsulUnavailable, DriverError
from meshop.model import keys
from meshop.model.records import Fence, dumps
from tests.unit.agent.rig import NODE, SLEEP, FakeRuntime, FakeStore, Rig, make_rig


def test_a_pass_creates_then_registers_and_reports() -> None:
    rig = make_rig()
    rig.assign("web", {**SLEEP, "ports": [{"name": "http", "container": 80}]}, replicas=2)
    assert rig.reconciler.reconcile() == pytest.approx(0.05)  # acted: look again soon
    assert sorted((c.service, c.replica) for c in rig.runtime.containers.values()) == [("web", 0), ("web", 1)]
    rig.settle()
    assert set(rig.services.registered) == {"meshop-n1-web-0", "meshop-n1-web-1"}
    reg = rig.services.registered["meshop-n1-web-0"]
    assert reg.address == "10.0.0.1" and reg.meta["node"] == NODE and reg.meta["replica"] == "0"
    record = rig.observed("web")
    assert record is not None and record.ready == 2 and record.reason == ""
    assert rig.reconciler.reconcile() is None  # converged: nothing to come back for


@pytest.mark.parametrize(
    ("foreign", "registered"),
    [
        pytest.param([], True, id="a-new-name-is-ours"),
        pytest.param(
            [InstanceHealth("c", "meshop-n2-web-0", {"service": "web", "replica": "0"}, "passing")],
            True,
            id="other-nodes-replicas-are-ours",
        ),
        pytest.param([InstanceHealth("c", "web-by-hand", {"service": "web"}, "passing")], False, id="hand-made"),
        pytest.param([InstanceHealth("c", "meshop-n2-web-0", {"service": "web"}, "passing")], False, id="no-replica"),
    ],
)
def test_replicas_never_join_a_consul_service_meshop_does_not_own(foreign, registered) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig()
    rig.services.foreign = foreign
    rig.assign("web", SLEEP)
    rig.settle()
    assert ("meshop-n1-web-0" in rig.services.registered) is registered
    refused = rig.registrar.refused
    assert ("web" in refused) is not registered
    if not registered:
        assert "web-by-hand" in refused["web"] or "meshop-n2-web-0" in refused["web"]
        record = rig.observed("web")
        assert record is not None and record.reason == "ServiceNameTaken" and "is not meshop's" in record.error
        rig.services.foreign = []  # the foreign instance goes: the replica registers on the next pass
        rig.settle()
        assert "meshop-n1-web-0" in rig.services.registered and refused == {}


def test_observed_state_is_written_only_when_it_changes() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    rig.settle()
    writes = rig.store.writes
    rig.settle(5)
    assert rig.store.writes == writes


def test_consul_down_keeps_everything_repairs_from_memory_and_fails_the_pass() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP, replicas=2)
    rig.settle()
    orphan = Container("x", "x", "gone", 0, "h", "h", 1, "img:1", "running")
    rig.runtime.containers["x"] = orphan
    victim = next(iter(rig.runtime.containers))
    del rig.runtime.containers[victim]
    rig.store.down = True
    with pytest.raises(ConsulUnavailable):
        rig.reconciler.reconcile()
    assert not rig.reconciler.authoritative
    assert "x" in rig.runtime.containers  # no deletion on uncertainty
    assert sorted(c.replica for c in rig.runtime.containers.values() if c.service == "web") == [0, 1]  # repaired
    rig.store.down = False
    rig.settle()
    assert "x" not in rig.runtime.containers  # once Consul answers, the orphan goes


def test_restarted_agent_with_consul_down_uses_the_state_file(tmp_path: Path) -> None:
    first = make_rig(tmp_path)
    first.assign("web", SLEEP)
    first.settle()
    assert (tmp_path / f"assignments-{NODE}.json").exists()
    first.runtime.containers.clear()
    second = make_rig(tmp_path, runtime=first.runtime, store=FakeStore(down=True))
    with pytest.raises(ConsulUnavailable):
        second.reconciler.reconcile()
    assert [c.service for c in first.runtime.containers.values()] == ["web"]


def test_one_failing_service_does_not_block_another_and_backs_off() -> None:
    runtime = FakeRuntime(fail_create={"bad"})
    rig = make_rig(runtime=runtime)
    rig.assign("bad", SLEEP)
    rig.assign("good", SLEEP)
    rig.settle(3)
    assert [c.service for c in runtime.containers.values()] == ["good"]
    assert runtime.attempts.count("bad") == 1  # held in backoff, not retried on every pass
    record = rig.observed("bad")
    assert record is not None and record.reason == "CreateFailed" and "boom" in record.error
    assert rig.reconciler.memory.services.held(rig.reconciler.clocks.mono()) == frozenset({"bad"})
    assert rig.reconciler.reconcile() is not None  # it asks to come back when the backoff ends


def test_unreadable_assignment_keeps_the_containers_it_had() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    rig.settle()
    before = set(rig.runtime.containers)
    rig.assign("web", SLEEP, raw=b"{not json")
    rig.settle()
    assert set(rig.runtime.containers) == before
    record = rig.observed("web")
    assert record is not None and record.reason == "InvalidAssignment"


def test_invalid_spec_is_refused_before_it_reaches_docker() -> None:
    rig = make_rig()
    rig.assign("web", {**SLEEP, "image": "not a valid image ref!"})
    rig.settle()
    assert rig.runtime.attempts == []
    record = rig.observed("web")
    assert record is not None and record.reason == "InvalidAssignment" and "image" in record.error


def test_secret_is_resolved_into_the_env_and_a_change_rolls_the_container() -> None:
    rig = make_rig()
    rig.secrets.values["meshop/secrets/web/pw"] = "pw-alpha"
    assignment = rig.assign(
        "web", {**SLEEP, "env": [{"name": "PW", "valueFrom": {"consulKey": "meshop/secrets/web/pw"}}]}
    )
    rig.settle()
    (first,) = rig.runtime.containers.values()
    assert rig.runtime.configs[-1].env == ("PW=pw-alpha",)
    assert first.spec_hash == assignment.spec_hash and first.config_hash != assignment.spec_hash
    rig.secrets.values["meshop/secrets/web/pw"] = "pw-beta"
    rig.settle(6)
    (second,) = rig.runtime.containers.values()
    assert second.config_hash != first.config_hash and rig.runtime.configs[-1].env == ("PW=pw-beta",)
    assert "pw-alpha" not in str(rig.store.data) and "pw-beta" not in str(rig.store.data)


def test_a_secret_echoed_in_a_runtime_error_is_redacted_from_observed_state_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = make_rig()
    value = "pw\nwith-a-newline"
    rig.secrets.values["meshop/secrets/web/pw"] = value
    rig.runtime.fail_create.add("web")
    rig.assign("web", {**SLEEP, "env": [{"name": "PW", "valueFrom": {"consulKey": "meshop/secrets/web/pw"}}]})
    rig.settle()
    record = rig.observed("web")
    assert record is not None and record.reason == "CreateFailed" and "PW=<redacted>" in record.error
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (str(rig.store.data), logged):
        assert "with-a-newline" not in text and value not in text


def test_a_crash_while_creating_is_logged_with_the_secret_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig()
    rig.secrets.values["meshop/secrets/web/pw"] = "crash-secret-value"

    def crash(config: ContainerConfig) -> str:
        raise ValueError(f"unexpected: {config.env}")

    rig.runtime.create_and_start = crash  # type: ignore[method-assign]
    rig.assign("web", {**SLEEP, "env": [{"name": "PW", "valueFrom": {"consulKey": "meshop/secrets/web/pw"}}]})
    rig.settle()
    record = rig.observed("web")
    assert record is not None and record.reason == "CreateFailed" and "ValueError" in record.error
    logged = caplog.text  # formatted, tracebacks included
    assert "unexpected" in logged and "crash-secret-value" not in logged + str(rig.store.data)


def test_a_secret_holding_a_nul_byte_is_refused_and_never_reaches_the_runtime() -> None:
    rig = make_rig()
    rig.secrets.values["meshop/secrets/web/pw"] = "abc\x00def-hidden"
    rig.assign("web", {**SLEEP, "env": [{"name": "PW", "valueFrom": {"consulKey": "meshop/secrets/web/pw"}}]})
    rig.settle()
    record = rig.observed("web")
    assert record is not None and record.reason == "SecretRefused" and "NUL byte" in record.error
    assert rig.runtime.attempts == [] and "hidden" not in str(rig.store.data)


def test_unassigned_service_observed_record_is_deleted_after_its_containers() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    rig.settle()
    assert rig.observed("web") is not None
    del rig.store.data[keys.assignment(NODE, "web")]
    rig.settle()
    assert rig.runtime.containers == {}
    assert rig.observed("web") is None
    assert rig.services.registered == {}


def test_consul_that_comes_back_empty_gets_observed_state_rewritten() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    rig.settle()
    rig.store.down = True
    with pytest.raises(ConsulUnavailable):
        rig.reconciler.reconcile()
    # a -dev Consul restarted without its data; the controller writes the assignment again
    rig.store.data.clear()
    rig.store.down = False
    rig.assign("web", SLEEP)
    rig.settle()
    assert rig.observed("web") is None and rig.reconciler.kv_problem  # not its KV: nothing written
    rig.store.data[keys.fence(NODE)] = dumps(Fence(NODE, adopt=True)).encode()  # meshop cluster adopt
    rig.settle()
    record = rig.observed("web")
    assert record is not None and record.ready == 1


def test_docker_unreachable_fails_softly_and_is_reported() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    rig.settle()

    def broken() -> list[Container]:
        raise DriverError("listing containers failed: Docker engine unreachable")

    rig.runtime.list_managed = broken  # type: ignore[method-assign]
    assert rig.reconciler.reconcile() == pytest.approx(2.0)
    assert rig.reconciler.driver_error and "unreachable" in rig.reconciler.driver_error
    del rig.runtime.list_managed  # back to the class's method
    rig.settle(1)
    assert rig.reconciler.driver_error is None


def recording(rig: Rig) -> list[str]:
    """What the pass does to Docker and to the node's registrations, in order."""
    calls: list[str] = []
    runtime, services = rig.runtime, rig.services
    create, remove, start = runtime.create_and_start, runtime.remove, runtime.start
    local, deregister = services.local, services.deregister

    def on_create(cfg: ContainerConfig) -> str:
        calls.append(f"create {cfg.labels['meshop.service']}/{cfg.labels['meshop.replica']}")
        return create(cfg)

    def on_remove(container_id: str, grace: float) -> None:
        calls.append(f"remove {runtime.containers[container_id].replica}")
        remove(container_id, grace)

    def on_start(container_id: str) -> None:
        calls.append(f"start {runtime.containers[container_id].replica}")
        start(container_id)

    def on_local() -> dict[str, dict]:
        calls.append("read registrations")
        return local()

    def on_deregister(service_id: str) -> None:
        calls.append(f"deregister {service_id}")
        deregister(service_id)

    runtime.create_and_start, runtime.remove, runtime.start = on_create, on_remove, on_start  # type: ignore[method-assign]
    services.local, services.deregister = on_local, on_deregister  # type: ignore[method-assign]
    return calls


def _scale_down(rig: Rig) -> None:
    rig.assign("web", SLEEP, replicas=1)


def _stop_first_update(rig: Rig) -> None:
    rig.assign("web", {**SLEEP, "args": ["120"], "update": {"strategy": "stop-first"}}, replicas=2)


def _crash(rig: Rig) -> None:
    cid = next(c.id for c in rig.runtime.containers.values() if c.replica == 1)
    rig.runtime.containers[cid] = replace(rig.runtime.containers[cid], state="exited", exit_code=1)


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        pytest.param(None, "create web/0", "read registrations", id="new-service-starts-before-registrations"),
        pytest.param(_scale_down, "deregister meshop-n1-web-1", "remove 1", id="scale-down-deregisters-first"),
        pytest.param(_stop_first_update, "deregister meshop-n1-web-0", "remove 0", id="stop-first-deregisters-first"),
        pytest.param(_crash, "read registrations", "start 1", id="restart-syncs-registrations-first"),
    ],
)
def test_registrations_follow_creations_and_precede_removals(change, before: str, after: str) -> None:  # type: ignore[no-untyped-def]
    """Only a plan that merely creates starts its containers before the registration sync (the way to a
    running container is shorter by a Consul round trip); anything removed or restarted is taken out of
    Consul first."""
    rig = make_rig()
    if change is not None:
        rig.assign("web", {**SLEEP, "update": {"strategy": "stop-first"}}, replicas=2)
        rig.settle()
        change(rig)
    else:
        rig.assign("web", SLEEP)
    calls = recording(rig)
    rig.reconciler.reconcile()
    assert before in calls and after in calls, calls
    assert calls.index(before) < calls.index(after), calls


def test_assignments_that_arrive_while_a_pass_plans_are_started_by_the_same_pass() -> None:
    """An apply of more services than one Consul transaction holds reaches the agent in parts; the
    assignments watch moving while the pass planned makes it read once more before acting."""
    rig = make_rig()
    rig.assign("first", SLEEP)
    versions = iter([1, 2])  # pass start, after planning: the second part landed meanwhile

    def version() -> int:
        value = next(versions, 2)
        if value == 2 and keys.assignment(NODE, "second") not in rig.store.data:
            rig.assign("second", SLEEP)
        return value

    rig.reconciler.assignments_version = version
    rig.reconciler.reconcile()
    assert sorted(rig.runtime.attempts) == ["first", "second"]


def test_a_pass_reads_again_at_most_once_however_often_the_assignments_move() -> None:
    rig = make_rig()
    rig.assign("web", SLEEP)
    counter = itertools.count()
    reads = 0
    list_together = rig.store.list_together

    def counting(prefixes: Sequence[str]) -> tuple[Listing, ...]:
        nonlocal reads
        reads += 1
        return list_together(prefixes)

    rig.store.list_together = counting  # type: ignore[method-assign]
    rig.reconciler.assignments_version = lambda: next(counter)  # moves on every look
    rig.reconciler.reconcile()
    assert reads == 2 and rig.runtime.attempts == ["web"]
    rig.reconciler.reconcile()  # nothing to do: no second read for a pass without actions
    assert reads == 3


DENIED = ConsulAccessDenied("Consul denied registering service meshop-n1-web-0: Missing service:write on web")
DOWN = ConsulError("Consul at http://127.0.0.1:8500 is timed out")


@pytest.mark.parametrize(
    ("errors", "denials", "soon"),
    [
        pytest.param([None, DENIED, None], 1, True, id="first-refusal-retried-soon"),
        pytest.param([None, None, DENIED, None], DENIED_QUICK_TRIES, True, id="creates-only-last-quick-try"),
        pytest.param([None, DENIED, None], DENIED_QUICK_TRIES + 1, False, id="a-lasting-refusal-fails-the-pass"),
        pytest.param([None, DENIED, DOWN], 1, False, id="another-error-too-fails-the-pass"),
        pytest.param([DENIED, None, None], 0, False, id="a-refused-read-is-not-a-registration"),
        pytest.param([None, DOWN, None], 0, False, id="consul-down-backs-off"),
    ],
)
def test_only_a_fresh_registration_refusal_is_retried_soon(errors, denials, soon) -> None:
    error = next(e for e in errors if e is not None)
    assert retry_denial_soon(error, errors, denials) is soon
