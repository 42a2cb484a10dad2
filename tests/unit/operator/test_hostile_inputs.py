"""Whatever nodes and service registrations put in Consul, the controller's pass does not raise, and every
reader of node-written data returns a valid value or refuses with ``RecordError``.

Hypothesis writes arbitrary JSON (or bytes) into every field of ``nodes/<n>`` and ``observed/<n>/<s>``,
arbitrary service and check ids (``meshop-n1-web-²``, ``meshop-agent-...``), ports of every kind, and
Consul health entries of any shape; the real ``Controller.reconcile`` then runs over them (its watches,
election and writer replaced by fakes: no Consul, the planning is the real one), and so do the CLI's
status snapshot, ``meshop logs``'s replica finder and the gateway's route reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshop.client.cluster import Snapshot
from meshop.client.replicas import find
from meshop.client.status import build_report
from meshop.consul.config import ConsulConfig
from meshop.consul.kv import Entry, Listing
from meshop.consul.services import CheckState, HealthView, InstanceHealth, _check_state, _instance
from meshop.gateway.daemon import parse_routes
from meshop.model import keys
from meshop.model.codec import RecordError
from meshop.model.records import Assignment, NodeRecord, Observed, RouteRecord, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from meshop.operator.desired import parse_service_entry
from meshop.operator.writer import WriteStats

NODES = ("n1", "n2", "n3")
GiB = 1024**3
DOCS = {
    "web": {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "image": "nginx:1",
            "replicas": 2,
            "ports": [{"name": "http", "container": 80}],
            "route": {"host": "web.example.com", "port": "http"},
            "health": {"http": {"path": "/healthz", "port": "http"}},
        },
    },
    "api": {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": "api"},
        "spec": {"image": "api:1", "replicas": 1, "placement": {"node": "n2"}},
    },
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
REPLICA_TEXT = st.text(alphabet="0123456789²\u0661\u0662\uff13+-_ .x", max_size=6) | st.integers(-5, 10**25).map(str)
NAMES = st.sampled_from(NODES) | st.text(max_size=10)
SERVICE_IDS = (
    st.text(max_size=30)
    | st.builds(lambda n, s, r: f"meshop-{n}-{s}-{r}", NAMES, st.sampled_from(["web", "api", "x-web"]), REPLICA_TEXT)
    | st.builds(lambda n: f"meshop-agent-{n}", NAMES)
)
PORTS = st.integers(-1, 70000) | st.integers() | JSON


@st.composite
def mutated(draw: st.DrawFn, base: Any, depth: int = 0) -> Any:
    """``base`` with some fields (at any depth) replaced by arbitrary JSON, some keys added or dropped."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    if isinstance(base, dict):
        out = {}
        for key, value in base.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # dropped
            out[key] = draw(mutated(value, depth + 1)) if choice < 3 else value
        for key, value in draw(st.dictionaries(st.text(max_size=8), JSON, max_size=2)).items():
            out[key] = value
        return out
    if isinstance(base, list):
        return [draw(mutated(item, depth + 1)) for item in base]
    return draw(JSON) if draw(st.booleans()) else base


def value_of(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A KV value: the mutated record as JSON, or any bytes at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=40))
    return json.dumps(draw(mutated(base)), allow_nan=False).encode()


def node_base(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "address": f"10.0.0.{NODES.index(name) + 1}",
        "labels": {"zone": "a"},
        "capacity": {"cpus": 4.0, "memory": 8 * GiB},
        "version": "0.1.0",
        "startedAt": 1.0,
        "metricsAddr": "",
        "ingressPort": 0,
        "problem": "",
    }


def container_base(replica: int, draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": f"{replica:012d}",
        "name": f"meshop-web-{replica}",
        "replica": replica,
        "image": "nginx:1",
        "state": "running",
        "health": "passing",
        "specHash": "h",
        "restartCount": 0,
        "hostPorts": {"80/tcp": draw(PORTS)},
        "phase": "Ready",
        "exitCode": None,
    }


@st.composite
def world(draw: st.DrawFn) -> dict[str, Any]:
    nodes = [
        Entry(keys.node(n), value_of(draw, node_base(n)), 10 + i) for i, n in enumerate(NODES) if draw(st.booleans())
    ]
    nodes += [Entry(keys.NODES + k, draw(st.binary(max_size=20)), 5) for k in draw(st.lists(NAMES, max_size=2))]
    observed = []
    for i, node in enumerate(NODES):
        for service in ("web", "api"):
            if draw(st.booleans()):
                base = {
                    "service": service,
                    "node": node,
                    "specHash": "h",
                    "generation": 1,
                    "ready": draw(st.integers(-2, 3)),
                    "containers": [container_base(r, draw) for r in range(draw(st.integers(0, 2)))],
                    "reason": "",
                    "error": "",
                    "lastReconcile": 1.0,
                }
                observed.append(Entry(keys.observed(node, service), value_of(draw, base), 20 + i))
    agents_raw = [
        draw(
            mutated(
                {
                    "Node": {"Node": f"c{n}", "Address": draw(st.sampled_from(["10.0.0.9", "127.0.0.1", "x", ""]))},
                    "Service": {
                        "ID": draw(SERVICE_IDS | st.just(f"meshop-agent-{n}")),
                        "Service": draw(st.sampled_from([f"meshop-agent-{n}", "meshop-agent"]) | st.text(max_size=8)),
                        "Meta": {"node": n},
                    },
                    "Checks": [
                        {"Status": draw(st.sampled_from(["passing", "critical", "warning", "?"])), "Output": ""}
                    ],
                }
            )
        )
        for n in draw(st.lists(NAMES, max_size=4))
    ]
    checks_raw = [
        draw(
            mutated(
                {
                    "Node": draw(st.sampled_from(["cn1", "cn2", "cx"])),
                    "CheckID": draw(st.sampled_from(["serfHealth", "x:health"]) | st.text(max_size=8)),
                    "ServiceID": draw(SERVICE_IDS),
                    "ServiceName": draw(st.sampled_from(["web", "api", ""]) | st.text(max_size=6)),
                    "Status": draw(st.sampled_from(["passing", "critical", "warning"]) | st.text(max_size=6)),
                    "Output": "",
                }
            )
        )
        for _ in range(draw(st.integers(0, 5)))
    ]
    routes = [Entry(keys.route("web.example.com"), value_of(draw, ROUTE_BASE), 30)]
    inventory = [  # issue 24: operator-written, but still read strictly
        Entry(keys.inventory_node(n), value_of(draw, {"addresses": ["10.0.0.1", "127.1"]}), 40)
        for n in draw(st.lists(NAMES, max_size=3))
    ]
    return {
        "nodes": nodes,
        "observed": observed,
        "agents": agents_raw,
        "checks": checks_raw,
        "routes": routes,
        "inventory": inventory,
    }


ROUTE_BASE = {
    "host": "web.example.com",
    "service": "web",
    "path": "/",
    "upstreams": [{"node": "n1", "address": "10.0.0.1", "port": 30000, "healthy": True}],
    "healthPath": "",
}


class FakeWatch:
    def __init__(self, latest: object) -> None:
        self.latest = latest
        self.connected = True

    def wait_ready(self, _timeout: float) -> bool:
        return True

    def stop(self) -> None:
        pass


class FakeLock:
    session = "session-1"

    def guard(self) -> tuple[()]:
        return ()


class FakeElection:
    lock = FakeLock()
    confirmed = True
    is_leader = True


class FakeWriter:
    def __init__(self) -> None:
        self.written = 0

    def write(self, changes: object, guard: object, owned: object) -> WriteStats:
        self.written += 1
        return WriteStats()


def desired_listing() -> Listing:
    return Listing(
        1, tuple(Entry(keys.desired_service(n), json.dumps(d).encode(), 3, 3) for n, d in sorted(DOCS.items()))
    )


def leading_controller(world: dict[str, Any]) -> Controller:
    """A real Controller whose watches hold ``world`` and whose election and writer are fakes."""
    ctl = Controller(
        ConsulConfig.from_env({}, addr="127.0.0.1:1"),
        ControllerOptions("hostile", grace_period=30.0),
        clock=lambda: 1_700_000_000.0,
        monotonic=lambda: 100.0,
    )
    desired = desired_listing()
    ctl.watches = {
        "desired": FakeWatch(desired),
        "nodes": FakeWatch(Listing(2, tuple(world["nodes"]))),
        "observed": FakeWatch(Listing(3, tuple(world["observed"]))),
        "inventory": FakeWatch(Listing(4, tuple(world.get("inventory", ())))),
        "health": FakeWatch(HealthView(parsed(_check_state, world["checks"]), parsed(_instance, world["agents"]))),
    }
    ctl.election = FakeElection()  # type: ignore[assignment]
    ctl.writer = FakeWriter()  # type: ignore[assignment]
    ctl.owned.loaded_at, ctl.owned.session = 100.0, FakeLock.session
    web = parse_service_entry("web", desired.entries[1]).desired
    assert web is not None and web.valid
    ctl.owned.assignments = {
        "web": {n: Assignment("web", n, 1, web.generation, web.spec_hash, dict(web.spec)) for n in ("n1", "n3")}
    }
    return ctl


def parsed(parse: Callable[[object], Any], raw: Iterable[object]) -> list[Any]:
    """Consul's answer through its parser: entries of another shape are dropped, never coerced."""
    out = [parse(item) for item in raw]
    assert all(item is None or isinstance(item, (CheckState, InstanceHealth)) for item in out)
    return [item for item in out if item is not None]


def decoded(cls: type, value: bytes) -> object | None:
    """The reader's answer: a record of ``cls`` or None for RecordError; anything else raised fails."""
    try:
        record = cls.from_dict(loads_json(value))  # type: ignore[attr-defined]
    except RecordError:
        return None
    assert isinstance(record, cls)
    return record


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world())
def test_the_controller_pass_never_raises_on_whatever_nodes_and_registrations_write(world: dict[str, Any]) -> None:
    for entry in world["nodes"]:
        decoded(NodeRecord, entry.value)
    for entry in world["observed"]:
        decoded(Observed, entry.value)
    ctl = leading_controller(world)
    for _ in range(2):  # the second pass reads through the controller's memo of parsed entries
        requeue = ctl.reconcile()
        assert requeue is None or requeue >= 0
    assert ctl.writer.written == 2  # type: ignore[attr-defined]
    assert ctl.last.leader and ctl.last.services == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world())
def test_the_cli_and_gateway_readers_never_raise_on_it_either(world: dict[str, Any]) -> None:
    listings = [desired_listing(), Listing(2, tuple(world["nodes"])), Listing(3, tuple(world["observed"]))]
    instances = parsed(_instance, world["agents"])
    snapshot = Snapshot.build(listings, instances, None, 1_700_000_000.0)
    build_report(snapshot).to_dict()
    for service in ("web", "api"):
        found = find(service, listings[2], listings[1], inventory=Listing(5, tuple(world["inventory"])))
        assert all(r.node in NODES for r in found.replicas)
    for route in parse_routes(Listing(4, tuple(world["routes"]))):
        assert isinstance(route, RouteRecord)
        decoded(RouteRecord, json.dumps(route.to_dict()).encode())


def test_a_refused_node_record_is_skipped_as_absent_and_counted() -> None:
    from meshop import metrics

    refused = metrics.refused_records_total.labels("controller", "nodes")
    before = refused._value.get()
    bad = {**node_base("n1"), "ingressPort": "8080"}  # a string where a port number is due
    good = node_base("n2")
    world = {
        "nodes": [
            Entry(keys.node("n1"), json.dumps(bad).encode(), 7),
            Entry(keys.node("n2"), json.dumps(good).encode(), 8),
        ],
        "observed": [],
        "agents": [],
        "checks": [],
    }
    ctl = leading_controller(world)
    ctl.reconcile()
    ctl.reconcile()  # the memo keeps the verdict: one refused version counts once
    assert refused._value.get() == before + 1
    assert ctl.health["n1"].problem == "node record missing"
