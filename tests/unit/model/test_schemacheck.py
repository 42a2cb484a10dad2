"""meshop's own schema walk against the ``jsonschema`` package: the same errors on the same documents.

``jsonschema`` stays the oracle here (it is a dependency); meshop only stopped importing it at run time.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from meshop.model import load_documents, load_schema
from meshop.model.schema import Sanitized, apply_defaults, schema_violations
from meshop.model.schemacheck import Validator, equal, unsupported

EXAMPLES = Path(__file__).parents[3] / "charts" / "examples"
KINDS = ("Service", "Node", "Gateway")

FULL_SERVICE = {
    "apiVersion": "meshop.io/v1alpha1",
    "kind": "Service",
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
    "spec": {
        "image": "nginx:1",
        "command": ["/bin/sh"],
        "args": ["-c", "x"],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"consulKey": "secrets/b"}}],
        "ports": [{"name": "http", "container": 80}],
        "volumes": [{"name": "data", "mountPath": "/data"}],
        "replicas": 2,
        "placement": {"nodeSelector": {"zone": "a"}, "spread": True},
        "route": {"host": "web.example.com", "path": "/", "port": "http"},
        "health": {"http": {"path": "/", "port": "http"}, "interval": "5s"},
        "update": {"strategy": "start-first", "healthTimeout": "30s"},
        "resources": {"memory": "64Mi", "cpus": 0.5},
    },
}


def seeds() -> list[dict[str, Any]]:
    docs = [FULL_SERVICE]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs.extend(load_documents(path.read_bytes(), source=str(path)))
    return docs


def keyed(errors: Any) -> list[tuple[str, tuple, str]]:
    return sorted((e.validator, tuple(e.absolute_path), repr(e.validator_value)) for e in errors)


def both(kind: str, doc: object) -> tuple[list, list]:
    schema = load_schema(kind)
    return keyed(Draft202012Validator(schema).iter_errors(doc)), keyed(Validator(schema).iter_errors(doc))


@pytest.mark.parametrize("kind", KINDS)
def test_the_crds_use_only_supported_keywords(kind: str) -> None:
    assert unsupported(load_schema(kind)) == []


def test_an_unsupported_keyword_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="pattern"):
        Validator({"type": "object", "properties": {"name": {"type": "string", "pattern": "^a"}}})


@pytest.mark.parametrize("doc", seeds(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_valid_documents_have_no_errors_in_either(doc: dict[str, Any]) -> None:
    value = copy.deepcopy(doc)
    schema = load_schema(doc["kind"])
    apply_defaults(value, schema, schema)
    assert both(doc["kind"], value) == ([], [])


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "http", "web", "start-first", "10s", "64Mi", "meshop.io/v1alpha1", "Service", "tcp"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "value", "port", "http", "tcp", "x", "path", "host"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def paths_of(value: object, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths_of(item, (*at, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths_of(item, (*at, index)))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(paths_of(doc)[1:]))
        parent: Any = doc
        for part in at[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[at[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "valueFrom", "tcp", "status", "http"]))] = draw(json_value)
        else:
            parent[at[-1]] = draw(json_value)
        if not isinstance(doc, dict) or "kind" not in doc:
            break
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_same_errors_as_jsonschema_on_mutated_documents(doc: dict[str, Any]) -> None:
    kind = doc.get("kind") if doc.get("kind") in KINDS else "Service"
    clean = Sanitized(doc).value
    assert isinstance(clean, dict)
    schema = load_schema(kind)
    apply_defaults(clean, schema, schema)
    assert both(kind, clean)[1] == both(kind, clean)[0]
    assert schema_violations(kind, clean) == schema_violations(kind, clean)  # stable


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        (True, 1, False),
        (1, 1.0, True),
        (False, 0, False),
        ({"a": [1, True]}, {"a": [1, True]}, True),
        ({"a": [1, True]}, {"a": [1, 1]}, False),
        ("1", 1, False),
        ([], {}, False),
    ],
    ids=["true-vs-1", "1-vs-1.0", "false-vs-0", "nested-equal", "nested-bool", "str-vs-int", "list-vs-dict"],
)
def test_json_equality_like_jsonschema(one: object, two: object, same: bool) -> None:
    assert equal(one, two) is same
    assert Draft202012Validator({"const": two}).is_valid(one) is same
