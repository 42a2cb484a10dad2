"""From KV entries to the controller's view: validation results, the last valid version, node views."""

from __future__ import annotations

import json

import pytest

from meshop.consul.store import Entry
from meshop.errors import Violation
from meshop.model import PERMISSIVE_POLICY, NodeDoc, Policy, load_documents, spec_hash, validate
from meshop.model.records import Assignment, Capacity, NodeRecord
from meshop.operator.desired import (
    Memo,
    ParsedNode,
    node_view,
    parse_node_entry,
    parse_service_entry,
    with_last_valid,
)
from meshop.operator.nodes import NodeHealth
from meshop.operator.view import NodeState, RouteSpec, Workload

WEB = """
apiVersion: meshop.io/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: nginx:1.25
  ports:
    - {name: http, container: 80}
    - {name: admin, container: 9000, host: 9000}
  replicas: 1
  placement: {node: n1, nodeSelector: {disk: ssd}, spread: false, group: front}
  route: {host: web.example.com, path: /app, port: http}
  resources: {memory: 256Mi, cpus: 0.5}
  update: {strategy: stop-first}
  privileged: true
  volumes:
    - {hostPath: /srv/web, mountPath: /data}
"""


def entry(key: str, text: str, index: int = 7) -> Entry:
    return Entry(key, text.encode(), index)


def test_a_valid_document_becomes_workload_spec_and_route() -> None:
    parsed = parse_service_entry("web", entry("desired/services/web", WEB, 42))
    assert parsed.violations == ()
    desired = parsed.desired
    assert desired is not None
    assert desired.generation == 42
    assert desired.workload == Workload(
        name="web",
        replicas=1,
        node="n1",
        node_selector={"disk": "ssd"},
        spread=False,
        group="front",
        memory=256 * 1024**2,
        cpus=0.5,
        privileged=True,
        host_network=False,
        bind_mounts=True,
        host_ports=frozenset({"9000/tcp"}),
    )
    assert desired.route == RouteSpec("web.example.com", "/app", 80)
    assert desired.image == "nginx:1.25"
    assert desired.spec["replicas"] == 1 and desired.spec_hash == spec_hash(dict(desired.spec))
    assert json.loads(json.dumps(desired.spec)) == desired.spec  # written as-is into assignments


def test_host_network_needs_a_node_policy() -> None:
    text = WEB.replace("  privileged: true\n", "  networkMode: host\n").replace(", host: 9000", "")
    parsed = parse_service_entry("web", entry("desired/services/web", text))
    assert parsed.desired is not None and parsed.desired.workload is not None, parsed.violations
    assert parsed.desired.workload.host_network and not parsed.desired.workload.privileged


def test_invalid_document_carries_exactly_the_models_violations() -> None:
    text = WEB.replace("replicas: 1", "replicas: -1").replace("container: 80}", "container: 70000}")
    parsed = parse_service_entry("web", entry("desired/services/web", text))
    expected = validate(load_documents(text, "x")[0], PERMISSIVE_POLICY)
    assert len(expected) >= 2
    assert list(parsed.violations) == expected
    assert parsed.desired is None


@pytest.mark.parametrize(
    ("text", "violation"),
    [
        pytest.param(
            WEB.replace("name: web}", "name: other}"),
            Violation("metadata.name", "must be 'web', the name in the key desired/services/web"),
            id="name-differs-from-key",
        ),
        pytest.param(
            WEB + "\n---\n" + WEB, Violation("", "holds 2 documents; this key holds exactly one"), id="two-documents"
        ),
    ],
)
def test_documents_that_do_not_fit_the_key(text: str, violation: Violation) -> None:
    assert parse_service_entry("web", entry("desired/services/web", text)).violations == (violation,)


def test_unreadable_text_is_an_invalid_document_not_an_exception() -> None:
    parsed = parse_service_entry("web", entry("desired/services/web", "spec: [unclosed"))
    assert len(parsed.violations) == 1 and parsed.violations[0].path == ""
    assert "desired/services/web" in parsed.violations[0].reason


def test_the_last_valid_version_is_read_back_from_the_assignments() -> None:
    good = parse_service_entry("web", entry("desired/services/web", WEB, 10)).desired
    assert good is not None
    older = Assignment("web", "n2", 1, 5, "oldhash", {"image": "nginx:1.0"})
    latest = Assignment("web", "n1", 3, 10, good.spec_hash, good.spec)
    bad = parse_service_entry("web", entry("desired/services/web", "spec: [unclosed", 11))
    result = with_last_valid(bad, {"n1": latest, "n2": older})
    assert (result.generation, result.violations) == (11, bad.violations)
    assert (result.workload, result.spec_hash, result.image, result.route) == (
        good.workload,
        good.spec_hash,
        "nginx:1.25",
        good.route,
    )
    assert with_last_valid(bad, {}).workload is None


def test_memo_parses_an_entry_once_per_modify_index() -> None:
    calls = []
    memo = Memo(lambda e: calls.append(e.modify_index) or e.modify_index)
    for index in (1, 1, 1, 2, 2):
        memo.get(Entry("k", b"", index))
    assert calls == [1, 2]
    memo.keep_only([])
    assert len(memo) == 0


NODE_DOC = """
apiVersion: meshop.io/v1alpha1
kind: Node
metadata: {name: n1, labels: {zone: home, disk: ssd}}
spec: {drain: true, policy: {allowPrivileged: true}}
"""


def test_node_view_merges_agent_labels_with_the_node_document() -> None:
    record = NodeRecord("n1", "10.1.1.1", {"disk": "hdd", "arch": "amd64"}, Capacity(4, 8 * 1024**3), ingress_port=8080)
    parsed = parse_node_entry("n1", entry("desired/nodes/n1", NODE_DOC))
    assert parsed.doc is not None
    view = node_view("n1", record, parsed, NodeHealth(NodeState.SUSPECT), allowed=("10.1.1.1",))
    assert view.labels == {"disk": "ssd", "arch": "amd64", "zone": "home"}
    assert (view.state, view.address, view.memory, view.cpus, view.ingress_port) == (
        NodeState.SUSPECT,
        "10.1.1.1",
        8 * 1024**3,
        4,
        8080,
    )
    assert (view.cordon, view.drain) == (False, True)
    assert (view.allow_privileged, view.allow_host_network, view.allow_bind_mounts) == (True, False, False)


def test_without_a_node_document_the_default_policy_applies() -> None:
    view = node_view("n1", NodeRecord("n1", "a"), None, NodeHealth(NodeState.READY))
    assert (view.cordon, view.drain, view.allow_privileged, view.allow_bind_mounts) == (False, False, False, False)


def test_an_invalid_node_document_cordons_its_node() -> None:
    parsed = parse_node_entry("n1", entry("desired/nodes/n1", NODE_DOC.replace("drain: true", "drain: maybe")))
    assert parsed.doc is None and parsed.violations
    view = node_view("n1", NodeRecord("n1", "a"), parsed, NodeHealth(NodeState.READY))
    assert view.cordon and not view.drain
    assert ParsedNode(NodeDoc("n1", policy=Policy())).doc is not None


ROUTED = """
apiVersion: meshop.io/v1alpha1
kind: Service
metadata: {name: api}
spec:
  image: api:1
  ports: [{name: http, container: 80}, {name: admin, container: 9000}]
  route: {host: api.example.com, path: %s, port: http}
%s"""


@pytest.mark.parametrize(
    ("route_path", "health", "expected"),
    [
        ("/", "  health: {http: {path: /healthz, port: http}}\n", "/healthz"),
        ("/api/", "  health: {http: {path: /api/health, port: http}}\n", "/api/health"),
        ("/api/", "  health: {http: {path: /healthz, port: http}}\n", ""),  # outside the route: unreachable
        ("/", "  health: {http: {path: /healthz, port: admin}}\n", ""),  # another port than the route's
        ("/", "  health: {tcp: {port: http}}\n", ""),
        ("/", "", ""),  # no health check
    ],
)
def test_the_route_carries_the_health_path_only_when_the_route_reaches_it(
    route_path: str, health: str, expected: str
) -> None:
    parsed = parse_service_entry("api", entry("desired/services/api", ROUTED % (route_path, health)))
    assert parsed.violations == ()
    assert parsed.desired is not None and parsed.desired.route is not None
    assert parsed.desired.route.health_path == expected


def test_a_spec_too_large_for_an_assignment_is_invalid_not_a_failed_transaction() -> None:
    from meshop.consul.store import Entry
    from meshop.model.hashing import MAX_SPEC_BYTES
    from meshop.operator.desired import parse_service_entry

    doc = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": "big"},
        "spec": {"image": "busybox:1", "env": [{"name": f"V{i}", "value": "x" * 2000} for i in range(200)]},
    }
    parsed = parse_service_entry("big", Entry("desired/services/big", json.dumps(doc).encode(), 7, 3))
    assert parsed.desired is None and parsed.created == 3
    (violation,) = parsed.violations
    assert violation.path == "spec" and f"at most {MAX_SPEC_BYTES}" in violation.reason


def test_volume_homes_read_lock_records_strictly() -> None:
    from meshop.consul.store import Entry
    from meshop.operator.desired import volume_homes

    def entry(key: str, value: bytes) -> Entry:
        return Entry(key, value, 1)

    homes = volume_homes(
        [
            entry("locks/volumes/db/data", b'{"node": "n3", "volume": "meshop-n3-db-data", "since": 1}'),
            entry("locks/volumes/db/logs", b'{"node": "n2"}'),  # the first volume's word stands
            entry("locks/volumes/bad/data", b'{"node": "N1 evil"}'),
            entry("locks/volumes/junk/data", b"\xff"),
            entry("locks/volumes/list/data", b"[1]"),
            entry("locks/volumes/deep/a/b", b'{"node": "n1"}'),
        ]
    )
    assert homes == {"db": "n3"}


def test_a_move_is_settled_only_when_every_volume_lock_names_the_target_and_is_not_pending() -> None:
    from meshop.consul.store import Entry
    from meshop.operator.desired import settled_moves

    def lock(service: str, volume: str, value: bytes) -> Entry:
        return Entry(f"locks/volumes/{service}/{volume}", value, 1)

    moves = {s: "n2" for s in ("done", "half", "pending", "elsewhere", "hostile", "none", "junk")}
    settled = settled_moves(
        [
            lock("done", "data", b'{"node": "n2", "since": 1}'),
            lock("half", "data", b'{"node": "n2"}'),
            lock("half", "logs", b'{"node": "n2", "pending": true}'),  # one volume still restoring
            lock("pending", "data", b'{"node": "n2", "pending": true}'),
            lock("elsewhere", "data", b'{"node": "n1"}'),  # still the old holder's
            lock("hostile", "data", b'{"node": "n2", "pending": "no"}'),
            lock("junk", "data", b"\xff"),
            lock("other", "data", b'{"node": "n2"}'),  # no move asked
        ],
        moves,
    )
    assert settled == ["done"]  # "none": no lock record yet
