"""YAML/JSON loading: YAML 1.1 traps avoided, schema-directed scalars, unsafe input refused."""

from __future__ import annotations

import json
import time

import pytest

from meshop.errors import DocumentError
from meshop.model import load_documents, parse_service, validate

from .helpers import pairs

HEAD = """\
apiVersion: meshop.io/v1alpha1
kind: Service
metadata:
  name: web
"""


def load_one(text: str) -> dict:
    (doc,) = load_documents(text, source="t.yaml")
    return doc


def spec_of(body: str) -> dict:
    return load_one(HEAD + "spec:\n  image: meshop-test/busybox:1\n" + body)["spec"]


def test_version_like_text_stays_text_in_string_fields() -> None:
    doc = load_one(
        HEAD + "  labels: {v: 1.10}\n  annotations: {released: 2024-01-02}\n"
        "spec:\n  image: reg.example.com/app:1.10\n"
        "  env:\n    - {name: VERSION, value: 1.10}\n    - {name: DAY, value: 2024-01-02}\n"
        "    - {name: FLAG, value: yes}\n    - {name: OCT, value: 0o17}\n    - {name: EMPTY, value: }\n"
        "    - {name: NULL, value: null}\n"
    )
    env = {e["name"]: e["value"] for e in doc["spec"]["env"]}
    assert env == {
        "VERSION": "1.10",
        "DAY": "2024-01-02",
        "FLAG": "yes",
        "OCT": "0o17",
        "EMPTY": "",
        "NULL": "null",
    }
    assert doc["metadata"]["labels"] == {"v": "1.10"}
    assert doc["metadata"]["annotations"] == {"released": "2024-01-02"}
    assert doc["spec"]["image"] == "reg.example.com/app:1.10"
    assert validate(doc) == []


def test_yaml_11_booleans_are_errors_in_boolean_fields() -> None:
    doc = load_one(HEAD + "spec:\n  image: x\n  privileged: yes\n  placement: {spread: on}\n")
    assert pairs(validate(doc)) == [
        ("spec.placement.spread", 'expected boolean, got string "on"'),
        ("spec.privileged", 'expected boolean, got string "yes"'),
    ]


@pytest.mark.parametrize("text", ["true", "True", "TRUE"])
def test_yaml_12_booleans(text: str) -> None:
    assert spec_of(f"  privileged: {text}\n")["privileged"] is True


def test_enum_words_that_yaml_11_reads_as_booleans() -> None:
    assert spec_of("  restart: no\n")["restart"] == "no"
    gw = load_one(
        "apiVersion: meshop.io/v1alpha1\nkind: Gateway\nmetadata: {name: gateway}\n"
        "spec: {domains: [localhost], tls: {mode: off}}\n"
    )
    assert gw["spec"]["tls"]["mode"] == "off"
    assert validate(gw) == []


def test_numbers_in_numeric_fields() -> None:
    spec = spec_of(
        "  replicas: 3\n  resources: {cpus: 1, memory: 1073741824}\n"
        "  health: {tcp: {port: 80}, interval: 1.5}\n  ports: [{name: http, container: 0x50}]\n"
    )
    assert spec["replicas"] == 3 and spec["ports"][0]["container"] == 80
    assert spec["resources"] == {"cpus": 1, "memory": 1073741824}
    assert spec["health"]["interval"] == 1.5


def test_mixed_type_fields_take_numbers_when_plain_and_text_otherwise() -> None:
    spec = spec_of(
        "  ports: [{name: http, container: 80}]\n  route: {host: a.localhost, port: 80}\n  resources: {memory: 256Mi}\n"
    )
    assert spec["route"]["port"] == 80
    assert spec["resources"]["memory"] == "256Mi"
    assert spec_of("  route: {host: a.localhost, port: http}\n")["route"]["port"] == "http"
    assert spec_of("  route: {host: a.localhost, port: '80'}\n")["route"]["port"] == "80"


def test_quoted_number_in_integer_field_is_a_type_error() -> None:
    doc = load_one(HEAD + 'spec:\n  image: x\n  replicas: "2"\n')
    assert doc["spec"]["replicas"] == "2"
    assert pairs(validate(doc)) == [("spec.replicas", 'expected integer, got string "2"')]


def test_explicit_core_tags() -> None:
    spec = spec_of("  replicas: !!int '2'\n  env: [{name: A, value: !!str 1.10}]\n")
    assert spec["replicas"] == 2 and spec["env"][0]["value"] == "1.10"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!python/object:os.system x\n", "tag !!python/object:os.system is not allowed"),
        ("a: !!python/object/apply:os.system [ls]\n", "tag !!python/object/apply:os.system is not allowed"),
        ("a: !custom x\n", "tag !custom is not allowed"),
        ("a: !!timestamp 2024-01-02\n", "tag !!timestamp is not allowed"),
        ("a: !!binary aGk=\n", "tag !!binary is not allowed"),
        ("a: !!set {x}\n", "tag !!set is not allowed"),
        ("a: !!int x\n", "'x' is not a valid !!int"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("1: x\n", "mapping key '1' is not a string: quote it"),
        ("true: x\n", "mapping key 'true' is not a string: quote it"),
        ("? [a]\n: b\n", "mapping keys must be strings, not collections"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "merge keys (<<) are not supported: write the fields out"),
        ("&a [*a]\n", "recursive alias"),
        ("a: [1, 2\n", "expected ',' or ']'"),
        ("- a\n- b\n", "document 1 must be an object, got string"),
        ("just text\n", "document 1 must be an object, got string"),
        ("a: " + "[" * 100 + "]" * 100, "nested deeper than 64 levels"),
        ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 80)), "nested deeper than 64 levels"),
    ],
)
def test_unreadable_yaml_is_a_document_error(text: str, message: str) -> None:
    with pytest.raises(DocumentError, match=None) as info:
        load_documents(text, source="bad.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.yaml")


def test_error_names_source_line_and_column() -> None:
    with pytest.raises(DocumentError) as info:
        load_documents("a: 1\nb: !!python/name:os.system x\n", source="desired/services/x")
    assert str(info.value) == "desired/services/x:2:4: tag !!python/name:os.system is not allowed"
    with pytest.raises(DocumentError) as info:
        load_documents("a: 1\nb: !!python/name:os.system x\n")
    assert str(info.value).startswith("line 2, column 4: ")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.monotonic()
    with pytest.raises(DocumentError, match="more than 100000 values"):
        load_documents("\n".join(lines))
    assert time.monotonic() - start < 2.0


def test_many_aliases_are_refused() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * 1001) + "]\n"
    with pytest.raises(DocumentError, match="more than 1000 aliases"):
        load_documents(text)


def test_small_anchors_still_work() -> None:
    text = HEAD + "spec:\n  image: x\n  env:\n    - &e {name: A, value: 1.10}\n  args: [&v 1.10, *v]\n"
    spec = load_one(text)["spec"]
    assert spec["env"] == [{"name": "A", "value": "1.10"}] and spec["args"] == ["1.10", "1.10"]


def test_input_size_is_capped() -> None:
    big = "a: " + "x" * (512 * 1024) + "\n"
    with pytest.raises(DocumentError, match="larger than 512 KiB"):
        load_documents(big)
    with pytest.raises(DocumentError, match="larger than 512 KiB"):
        load_documents(big.encode())


def test_multi_document_stream() -> None:
    text = (
        HEAD + "spec: {image: x}\n---\n# only a comment\n---\n"
        "apiVersion: meshop.io/v1alpha1\nkind: Node\nmetadata: {name: n1}\n---\n"
    )
    docs = load_documents(text)
    assert [d["kind"] for d in docs] == ["Service", "Node"]
    assert load_documents("") == [] and load_documents("# nothing\n") == []


def test_top_level_list_is_a_list_of_documents() -> None:
    docs = load_documents("- {kind: Node, metadata: {name: a}}\n- {kind: Node, metadata: {name: b}}\n")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]


def test_bytes_with_bom_and_bad_utf8() -> None:
    assert load_documents(b"\xef\xbb\xbfa: b\n") == [{"a": "b"}]
    with pytest.raises(DocumentError, match="not UTF-8"):
        load_documents(b"a: \xff\n")


def test_json_is_parsed_as_json_with_exact_errors() -> None:
    doc = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"image": "x", "replicas": 2, "env": [{"name": "V", "value": "1.10"}]},
    }
    assert load_documents(json.dumps(doc)) == [doc]
    assert load_documents(json.dumps([doc, doc]).encode()) == [doc, doc]
    with pytest.raises(DocumentError) as info:
        load_documents('{\n  "kind": "Service",\n  "spec": {"image": "x"\n}', source="s.json")
    assert str(info.value) == "s.json:4:2: Expecting ',' delimiter"
    with pytest.raises(DocumentError, match="duplicate key 'a'"):
        load_documents('{"a": 1, "a": 2}')
    with pytest.raises(DocumentError, match="NaN is not a JSON number"):
        load_documents('{"a": NaN}')
    with pytest.raises(DocumentError, match="a number has too many digits"):
        load_documents('{"a": ' + "1" * 5000 + "}")
    with pytest.raises(DocumentError, match="nested deeper than 64 levels"):
        load_documents("[" * 100 + "]" * 100)


def test_flow_style_yaml_that_is_not_json_still_loads() -> None:
    assert load_documents("{a: b, c: 1.10}") == [{"a": "b", "c": 1.1}]
    assert load_documents('{"a": "b",}') == [{"a": "b"}]


def test_loaded_documents_parse() -> None:
    text = HEAD + (
        "spec:\n  image: meshop-test/busybox:1\n  ports: [{name: http, container: 80}]\n"
        "  route: {host: web.localhost, port: http}\n  health: {http: {port: http}, interval: 1m30s}\n"
    )
    svc = parse_service(load_one(text))
    assert svc.spec.route is not None and svc.spec.route.port == 80
    assert svc.spec.health is not None and svc.spec.health.interval == 90.0


def test_json_integral_floats_are_integers() -> None:
    text = json.dumps(
        {
            "apiVersion": "meshop.io/v1alpha1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "image": "x",
                "replicas": 2.0,
                "resources": {"memory": 1e9, "cpus": 1.0},
                "ports": [{"name": "http", "container": 80.0}],
                "update": {"strategy": "stop-first"},
            },
        }
    )
    svc = parse_service(load_documents(text)[0])
    assert svc.spec.replicas == 2 and type(svc.spec.replicas) is int
    assert svc.spec.resources.memory == 10**9 and svc.spec.resources.cpus == 1.0
    assert svc.spec.ports[0].container == 80 and type(svc.spec.ports[0].container) is int
