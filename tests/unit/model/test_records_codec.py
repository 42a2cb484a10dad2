"""The strict record codec (``meshop.model.codec`` through ``meshop.model.records``): the bytes it writes
are the ones the hand-written encoders wrote, and it refuses every wrong type with the field's path."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.model import records as R
from meshop.model.codec import RecordError, decode
from meshop.operator.view import NodeState


def samples(r: ModuleType) -> dict[str, Any]:
    """One or two of each record, as writers build them (ints in float fields included)."""
    C = r.ContainerState
    c1 = C(
        "0123456789ab", "meshop-web-0", 0, "nginx:1", "running", "passing", "h1", 2, {"80/tcp": 30000}, "Ready", None
    )
    c2 = C("ba9876543210", "meshop-web-1", 1, "nginx:1", "exited", "critical", "h1", 0, {}, "CrashLoopBackOff", 137)
    cond = r.Condition("Ready", "True", "Ready", "2/2 ready", 1700000000.25, 7)
    return {
        "capacity": r.Capacity(4.0, 8 * 1024**3),
        "capacity-int-cpus": r.Capacity(4, 1024),
        "node": r.NodeRecord(
            "n1",
            "10.0.0.1",
            {"zone": "a", "disk": "ssd"},
            r.Capacity(2.0, 1 << 30),
            "0.1.0",
            1700000000.5,
            "10.0.0.1:9464",
            8080,
            "",
        ),
        "node-problem": r.NodeRecord("n2", "10.0.0.2", problem="the KV is not the one this agent knows"),
        "fence": r.Fence("n1", "tok", 3, 1700000001.0, False),
        "fence-adopt": r.Fence("n1", "", 0, 5.0, True),
        "assignment": r.Assignment(
            "web",
            "n1",
            2,
            42,
            "abcdef0123456789",
            {"image": "nginx:1", "replicas": 2, "ports": [{"name": "http", "container": 80}]},
        ),
        "container": c1,
        "observed": r.Observed(
            "web", "n1", "h1", 42, 1, (c1, c2), "CrashLoopBackOff", "replica 1 exited with code 137", 1700000002.0
        ),
        "observed-empty": r.Observed("web", "n1", "", 0, 0),
        "condition": cond,
        "status": r.ServiceStatus(
            "web",
            42,
            (cond, r.Condition("Degraded", "False")),
            {"n1": 2},
            2,
            2,
            {"n1": {"ready": 2, "replicas": 2, "error": ""}},
            "nginx:1",
            "web.example.com/",
            "h1",
            1699999999.0,
        ),
        "node-status": r.NodeStatus("n1", "Suspect", 1700000003.0, "agent check critical"),
        "node-status-int-since": r.NodeStatus("n1", "Ready", 100),
        "upstream": r.Upstream("n1", "10.0.0.1", 30000, True),
        "route": r.RouteRecord(
            "web.example.com",
            "web",
            "/",
            (r.Upstream("n1", "10.0.0.1", 30000, True), r.Upstream("n2", "10.0.0.2", 31000, False)),
            "/healthz",
        ),
        "route-fail-open": r.RouteRecord("web.example.com", "web", "/api", (), "", True),
        "event": r.Event(
            1700000004.125, "Rescheduled", "service/web", "moved off n1 (NodeLost); now on n2=1", "controller"
        ),
        "dns": r.DnsStatus(
            "rfc2136",
            "example.com",
            "gateways",
            ("g1", "g2"),
            3,
            1700000005.0,
            "update web.example.com",
            "",
            ("taken.example.com",),
        ),
        "dns-default": r.DnsStatus(),
    }


# dumps() of each sample by the hand-written encoders the codec replaced (main at d63d8f1), one per line
GOLDEN: dict[str, str] = json.loads((Path(__file__).parent / "records_golden.json").read_text())


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_records_encode_to_the_bytes_the_old_encoders_wrote(name: str) -> None:
    assert R.dumps(samples(R)[name]) == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_records_decode_from_those_bytes_and_encode_them_again(name: str) -> None:
    record = samples(R)[name]
    back = type(record).from_dict(R.loads_json(GOLDEN[name]))
    assert back == record
    if "int" not in name:  # a float field written from an int reads back as a float (as before)
        assert R.dumps(back) == GOLDEN[name]


def observed_body(**container: Any) -> dict[str, Any]:
    body = json.loads(GOLDEN["observed"])
    body["containers"][1].update(container)
    return body


@pytest.mark.parametrize(
    ("cls", "body", "message"),
    [
        (R.NodeRecord, {"name": 5}, "name: expected a string, got an integer"),
        (R.NodeRecord, {"name": "n1", "ingressPort": "8080"}, "ingressPort: expected an integer, got a string"),
        (R.NodeRecord, {"name": "n1", "ingressPort": True}, "ingressPort: expected an integer, got a boolean"),
        (R.NodeRecord, {"name": "n1", "ingressPort": 80.0}, "ingressPort: expected an integer, got a number"),
        (R.NodeRecord, {"name": "n1", "ingressPort": 2**70}, "ingressPort: integer out of range"),
        (R.NodeRecord, {"name": "n1", "address": ["10.0.0.1"]}, "address: expected a string, got an array"),
        (R.NodeRecord, {"name": "n1", "labels": {"a": 1}}, "labels['a']: expected a string, got an integer"),
        (R.NodeRecord, {"name": "n1", "labels": ["a"]}, "labels: expected an object, got an array"),
        (R.NodeRecord, {"name": "n1", "capacity": {"cpus": "4"}}, "capacity.cpus: expected a number, got a string"),
        (R.NodeRecord, {"name": "n1", "capacity": {"memory": 1.5}}, "capacity.memory: expected an integer"),
        (R.NodeRecord, {"name": "n1", "startedAt": False}, "startedAt: expected a number, got a boolean"),
        (R.NodeRecord, {"address": "10.0.0.1"}, "name: missing"),
        (R.NodeRecord, ["n1"], "expected an object, got an array"),
        (R.NodeRecord, None, "expected an object, got null"),
        (R.Observed, observed_body(phase="Exploded"), "containers[1].phase: expected one of"),
        (R.Observed, observed_body(health="fine"), "containers[1].health: expected one of"),
        (R.Observed, observed_body(hostPorts={"80/tcp": "30000"}), "containers[1].hostPorts['80/tcp']: expected an"),
        (R.Observed, observed_body(exitCode="137"), "containers[1].exitCode: expected an integer, got a string"),
        (R.Observed, observed_body(replica=None), "containers[1].replica: expected an integer, got null"),
        (R.Observed, {**json.loads(GOLDEN["observed"]), "containers": {}}, "containers: expected an array, got an"),
        (R.Observed, {**json.loads(GOLDEN["observed"]), "ready": "2"}, "ready: expected an integer, got a string"),
        (R.Observed, {"service": "web", "node": "n1"}, "specHash: missing"),
        (R.Fence, {"node": "n1", "adopt": 1}, "adopt: expected true or false, got an integer"),
        (R.Fence, {"node": "n1", "adopt": "true"}, "adopt: expected true or false, got a string"),
        (R.Condition, {"type": "Ready", "status": "true"}, "status: expected one of 'True', 'False', 'Unknown'"),
        (R.Condition, {"type": "Happy", "status": "True"}, "type: expected one of"),
        (R.NodeStatus, {"name": "n1", "state": "Lost", "since": 1.0}, "state: expected one of"),
        (
            R.RouteRecord,
            {"host": "h", "service": "s", "upstreams": [{"node": "n1", "address": "a"}]},
            "upstreams[0].port: missing",
        ),
        (R.RouteRecord, {"host": "h", "service": "s", "failOpen": "yes"}, "failOpen: expected true or false"),
        (R.Assignment, {**json.loads(GOLDEN["assignment"]), "spec": "nginx"}, "spec: expected an object, got a string"),
        (
            R.ServiceStatus,
            {"name": "web", "observedGeneration": 1, "nodes": {"n1": 2}},
            "nodes['n1']: expected an object",
        ),
        (R.Event, {"time": "now", "kind": "k", "object": "o", "message": "m"}, "time: expected a number, got a string"),
        (R.DnsStatus, {"mode": "everything"}, "mode: expected one of"),
        (R.DnsStatus, {"gateways": "g1"}, "gateways: expected an array, got a string"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_wrong_types_are_refused_with_the_field_path(cls: type, body: Any, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        cls.from_dict(body)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)  # every reader already treats a ValueError as unreadable


def test_unknown_keys_are_ignored_and_missing_optional_fields_take_defaults() -> None:
    """A newer writer's extra field, an older writer's missing one: both read (rolling upgrades)."""
    body = {"name": "n1", "address": "10.0.0.1", "zoneOfTomorrow": {"x": [1]}}
    assert R.NodeRecord.from_dict(body) == R.NodeRecord("n1", "10.0.0.1")
    container = {"id": "c", "name": "n", "replica": 0, "image": "i", "state": "running", "health": "none"}
    assert R.ContainerState.from_dict({**container, "specHash": "h"}).phase == ""
    assert R.RouteRecord.from_dict({"host": "h", "service": "s"}).fail_open is False


def test_display_text_is_cut_not_refused() -> None:
    assert R.NodeRecord.from_dict({"name": "n1", "problem": "x" * 5000}).problem == "x" * 500
    dns = R.DnsStatus.from_dict({"gateways": ["g" * 100] * 100, "conflicts": ["c"] * 100})
    assert len(dns.gateways) == 64 and dns.gateways[0] == "g" * 63 and len(dns.conflicts) == 32


@pytest.mark.parametrize(
    "text",
    [
        b'{"name": "n1", "startedAt": NaN}',
        b'{"name": "n1", "startedAt": -Infinity}',
        b"[]",
        b"1",
        b"",
        b'{"name": "n1"',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,  # json.loads raises RecursionError: it once escaped every reader
        b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["nan", "infinity", "array", "number", "empty", "cut", "not-utf8", "deep-array", "deep-field"],
)
def test_json_that_is_not_a_record_is_refused(text: bytes) -> None:
    with pytest.raises(RecordError):
        R.NodeRecord.from_dict(R.loads_json(text))


def test_record_states_match_the_operators_node_states() -> None:
    assert set(typing.get_args(R.NodeStateName)) == {s.value for s in NodeState}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
RECORDS = [
    R.NodeRecord,
    R.Fence,
    R.Assignment,
    R.Observed,
    R.ServiceStatus,
    R.NodeStatus,
    R.RouteRecord,
    R.Event,
    R.DnsStatus,
]


@given(st.sampled_from(RECORDS), st.sampled_from(sorted(GOLDEN)), st.data())
def test_any_json_in_any_field_decodes_or_is_refused_and_what_decodes_encodes_again(
    cls: type, sample: str, data: st.DataObject
) -> None:
    """Start from a real record's JSON, replace some fields (at any depth) with arbitrary JSON values."""
    body = json.loads(GOLDEN[sample])
    for _ in range(data.draw(st.integers(1, 3))):
        target = body
        while isinstance(target, dict) and target and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(target)))
            if not isinstance(target[key], dict):
                break
            target = target[key]
        if isinstance(target, dict):
            key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6)) if target else "x"
            target[key] = data.draw(JSON)
    try:
        record = decode(cls, body)
    except RecordError:
        return
    assert R.loads_json(R.dumps(record)) is not None
    again = decode(cls, json.loads(R.dumps(record)))
    assert R.dumps(again) == R.dumps(record)
