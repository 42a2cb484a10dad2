"""Properties: no input makes the model raise anything but its own errors; round trips are exact."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshop.errors import DocumentError, ValidationFailed, Violation
from meshop.model import (
    PERMISSIVE_POLICY,
    Service,
    ServiceSpec,
    load_documents,
    parse_document,
    parse_service,
    spec_hash,
    validate,
)
from meshop.model.schema import apply_defaults, load_schema

from .helpers import service

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None), max_size=20),
    st.sampled_from(["", "http", "10s", "256Mi", "Service", "meshop.io/v1alpha1", "tcp", "/", "a.localhost"]),
)
FIELD_NAMES = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "name",
    "labels",
    "image",
    "ports",
    "container",
    "host",
    "route",
    "path",
    "port",
    "health",
    "http",
    "tcp",
    "env",
    "value",
    "valueFrom",
    "volumes",
    "mountPath",
    "hostPath",
    "replicas",
    "status",
    "memory",
    "interval",
]
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=30,
)


def _assert_violations(result: object) -> None:
    assert isinstance(result, list) and all(isinstance(v, Violation) for v in result)
    assert result == sorted(result)
    assert not any(v.reason.startswith("could not validate") for v in result), result


@SETTINGS
@given(json_values)
def test_validate_never_raises_on_arbitrary_values(value: Any) -> None:
    _assert_violations(validate(value))
    with contextlib.suppress(ValidationFailed):
        parse_document(value)


@SETTINGS
@given(st.data())
def test_mutated_valid_documents_never_break_validation(data: st.DataObject) -> None:
    doc = service(
        {
            "route": {"host": "web.localhost", "port": "http"},
            "health": {"tcp": {"port": 80}},
            "env": [{"name": "A", "value": "x"}],
            "volumes": [{"name": "v", "mountPath": "/v"}],
            "resources": {"memory": "64Mi", "cpus": 1},
            "placement": {"node": "n1"},
        }
    )
    for _ in range(data.draw(st.integers(1, 4))):
        target: Any = doc
        path = data.draw(st.lists(st.sampled_from([*FIELD_NAMES, 0, 1]), max_size=4))
        for step in path[:-1]:
            in_dict = isinstance(target, dict) and step in target
            in_list = isinstance(target, list) and isinstance(step, int) and step < len(target)
            if in_dict or in_list:
                target = target[step]
        replacement = data.draw(json_values)
        if isinstance(target, dict) and path:
            target[str(path[-1])] = replacement
        elif isinstance(target, list) and target:
            target[0] = replacement
    _assert_violations(validate(doc))
    try:
        svc = parse_service(doc, PERMISSIVE_POLICY)
    except ValidationFailed as exc:
        assert exc.violations
    else:
        assert ServiceSpec.from_dict(json.loads(json.dumps(svc.spec.to_dict()))) == svc.spec


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_load_documents_raises_only_document_errors(text: str | bytes) -> None:
    try:
        docs = load_documents(text, source="fuzz")
    except DocumentError:
        return
    for doc in docs:
        _assert_violations(validate(doc))
        with contextlib.suppress(ValidationFailed):
            parse_document(doc)


YAMLISH = st.lists(
    st.sampled_from(
        [
            "a:",
            " b",
            "- ",
            "&x ",
            "*x",
            "!!str ",
            "!!int ",
            "{",
            "}",
            "[",
            "]",
            ",",
            "'",
            '"',
            "\n",
            "  ",
            "kind: Service\n",
            "spec:\n",
            "yes",
            "1.10",
            "2024-01-02",
            "~",
            "<<: ",
            "? ",
            "---\n",
            "#",
            "|\n",
            ">\n",
            "%YAML 1.2\n",
            "!t ",
            "0x1F",
            ".inf",
            "null",
        ]
    ),
    max_size=40,
).map("".join)


@SETTINGS
@given(YAMLISH)
def test_yaml_shaped_noise_raises_only_document_errors(text: str) -> None:
    test_load_documents_raises_only_document_errors.hypothesis.inner_test(text)  # type: ignore[attr-defined]


# --- valid documents --------------------------------------------------------------------------------

label = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
env_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
durations = st.one_of(
    st.sampled_from(["500ms", "10s", "1m30s", "2h", "1.5s", "90s"]),
    st.integers(1, 3600),
    st.floats(0.001, 3600),
)
intervals = st.one_of(st.sampled_from(["1s", "10s", "1m30s", "1.5s"]), st.integers(1, 3600), st.floats(1.0, 3600))
service_name = label.filter(lambda name: not name.startswith("meshop-"))  # reserved for meshop's own
label_maps = st.dictionaries(label, st.from_regex(r"([a-z0-9]([a-z0-9.]{0,8}[a-z0-9])?)?", fullmatch=True), max_size=3)


@st.composite
def service_docs(draw: st.DrawFn) -> dict[str, Any]:
    containers = draw(st.lists(st.integers(1, 65535), unique=True, max_size=4))
    strategy = draw(st.sampled_from([None, "start-first", "stop-first"]))
    replicas = draw(st.one_of(st.none(), st.integers(0, 100)))
    host_ports = draw(st.lists(st.integers(1, 65535), unique=True, min_size=len(containers), max_size=len(containers)))
    network = draw(st.sampled_from([None, "bridge", "host"]))
    ports = []
    for i, number in enumerate(containers):
        port: dict[str, Any] = {"name": f"p{i}", "container": number}
        if strategy == "stop-first" and network != "host" and draw(st.booleans()):
            port["host"] = host_ports[i]
        if draw(st.booleans()):
            port["protocol"] = "tcp"
        ports.append(port)
    spec: dict[str, Any] = {
        "image": draw(
            st.sampled_from(["meshop-test/busybox:1", "reg.example.com:5000/a/b:v1.10", "app@sha256:" + "a" * 64])
        )
    }
    optional = {
        "command": st.lists(st.text(max_size=10), max_size=3),
        "args": st.lists(st.text(max_size=10), max_size=3),
        "env": st.lists(env_name, unique=True, max_size=3).flatmap(
            lambda names: st.tuples(
                *[
                    st.one_of(
                        st.builds(lambda n, v: {"name": n, "value": v}, st.just(n), st.text(max_size=20)),
                        st.just({"name": n, "valueFrom": {"consulKey": f"meshop/secrets/{n}"}}),
                    )
                    for n in names
                ]
            ).map(list)
        ),
        "volumes": st.lists(label, unique=True, max_size=3).flatmap(
            lambda names: st.tuples(
                *[
                    st.fixed_dictionaries(
                        {"name": st.just(n), "mountPath": st.just(f"/mnt/{n}")},
                        optional={"readOnly": st.booleans(), "deleteWithService": st.booleans()},
                    )
                    for n in names
                ]
            ).map(list)
        ),
        "restart": st.sampled_from(["no", "always", "unless-stopped", "on-failure"]),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "memory": st.one_of(st.integers(6 * 2**20, 2**40), st.sampled_from(["256Mi", "1Gi", "64M", "1.5Gi"])),
                "cpus": st.floats(0.01, 64),
                "pids": st.integers(8, 4194304),
            },
        ),
        "security": st.fixed_dictionaries(
            {},
            optional={
                "user": st.sampled_from(["1000", "1000:1000", "app", "app:staff", "_svc-1:0"]),
                "readOnlyRootFilesystem": st.booleans(),
                "noNewPrivileges": st.booleans(),
                "capabilities": st.fixed_dictionaries(
                    {},
                    optional={
                        "drop": st.lists(st.sampled_from(["ALL", "NET_RAW", "cap_chown", "SYS_ADMIN"]), max_size=3),
                        "add": st.lists(st.sampled_from(["NET_BIND_SERVICE", "cap_kill", "CHOWN"]), max_size=3),
                    },
                ),
            },
        ),
        "expose": st.fixed_dictionaries(
            {},
            optional={"tailnet": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "name": label})},
        ),
        "privileged": st.booleans(),
        "update": st.fixed_dictionaries({}, optional={"healthTimeout": durations, "autoRollback": st.booleans()}),
    }
    for key, strategy_of in optional.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy_of)
    if ports:
        spec["ports"] = ports
    if strategy is not None:
        spec.setdefault("update", {})["strategy"] = strategy
    if replicas is not None:
        spec["replicas"] = replicas
    if network is not None:
        spec["networkMode"] = network
    has_host = any("host" in p for p in ports)
    placement = draw(st.fixed_dictionaries({}, optional={"nodeSelector": label_maps, "group": label}))
    if not has_host:
        placement.update(draw(st.fixed_dictionaries({}, optional={"node": label, "spread": st.booleans()})))
    if placement or draw(st.booleans()):
        spec["placement"] = placement
    if ports and draw(st.booleans()):
        ref = draw(st.sampled_from([p["name"] for p in ports] + [p["container"] for p in ports]))
        spec["route"] = {
            "host": draw(st.sampled_from(["a.localhost", "*.example.com", "x.y.z"])),
            "port": ref,
        }
        if draw(st.booleans()):
            spec["route"]["path"] = draw(st.sampled_from(["/", "/api", "/a/b-c_d.e~f%20"]))
    if ports and draw(st.booleans()):
        ref = draw(st.sampled_from([p["name"] for p in ports] + [p["container"] for p in ports]))
        probe = draw(
            st.sampled_from(
                [{"http": {"port": ref}}, {"http": {"port": ref, "path": "/healthz"}}, {"tcp": {"port": ref}}]
            )
        )
        spec["health"] = {
            **probe,
            **draw(st.fixed_dictionaries({}, optional={"interval": intervals, "timeout": durations})),
        }
    meta = {"name": draw(service_name), **draw(st.fixed_dictionaries({}, optional={"labels": label_maps}))}
    for env in spec.get("env", []):
        if "valueFrom" in env:  # secrets live in the service's own folder
            env["valueFrom"]["consulKey"] = f"meshop/secrets/{meta['name']}/{env['name']}"
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": meta, "spec": spec}


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@SETTINGS
@given(service_docs())
def test_generated_documents_are_valid(doc: dict[str, Any]) -> None:
    assert validate(doc, PERMISSIVE_POLICY) == []


@SETTINGS
@given(service_docs())
def test_to_dict_from_dict_round_trip_through_json(doc: dict[str, Any]) -> None:
    svc = parse_service(doc, PERMISSIVE_POLICY)
    stored = json.dumps(svc.spec.to_dict(), sort_keys=True)
    assert ServiceSpec.from_dict(json.loads(stored)) == svc.spec
    assert ServiceSpec.from_dict(json.loads(stored)).to_dict() == svc.spec.to_dict()
    assert Service.from_dict(json.loads(json.dumps(svc.to_dict()))) == svc
    assert parse_service(svc.to_dict(), PERMISSIVE_POLICY) == svc


@SETTINGS
@given(service_docs(), st.randoms(use_true_random=False))
def test_spec_hash_ignores_key_order_and_explicit_defaults(doc: dict[str, Any], rng: random.Random) -> None:
    svc = parse_service(doc, PERMISSIVE_POLICY)
    expected = spec_hash(svc.spec)
    defaulted = copy.deepcopy(doc["spec"])
    root = load_schema("Service")
    apply_defaults(defaulted, root["properties"]["spec"], root)
    assert spec_hash(doc["spec"]) == expected
    assert spec_hash(defaulted) == expected
    assert spec_hash(_shuffled(doc["spec"], rng)) == expected
    assert spec_hash(svc.spec.to_dict()) == expected
    assert len(expected) == 16 and int(expected, 16) >= 0


@SETTINGS
@given(service_docs())
def test_yaml_dump_then_load_gives_the_same_service(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False) + "---\n" + json.dumps(doc)
    first, second = load_documents(text)
    assert parse_service(first, PERMISSIVE_POLICY) == parse_service(doc, PERMISSIVE_POLICY)
    assert second == doc
