"""The pure converter (``meshop.convert.compose``) on normalised Compose projects: what maps to what, the
warnings it gives (key, service, line), secrets never in a document, and every output valid."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.convert import fields
from meshop.convert.compose import convert
from meshop.convert.normalise import SourceLines
from meshop.convert.routes import route_labels
from meshop.model import validate


def one(svc: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[str]]:
    result = convert({"services": {"web": svc}}, **kw)
    (doc,) = result.documents
    assert validate(doc) == []
    return doc["spec"], [f"{w.path}: {w.message}" for w in result.warnings]


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        ({"image": "nginx:1"}, {"image": "nginx:1"}),
        ({"image": "a", "command": "npm run 'start prod'"}, {"image": "a", "args": ["npm", "run", "start prod"]}),
        ({"image": "a", "entrypoint": ["/init"]}, {"image": "a", "command": ["/init"]}),
        ({"image": "a", "deploy": {"replicas": 3}}, {"image": "a", "replicas": 3}),
        ({"image": "a", "mem_limit": "1g", "cpus": 1.5}, {"image": "a", "resources": {"memory": "1Gi", "cpus": 1.5}}),
        ({"image": "a", "restart": "always"}, {"image": "a", "restart": "always"}),
        ({"image": "a", "user": "1000:1000", "read_only": True},
         {"image": "a", "security": {"user": "1000:1000", "readOnlyRootFilesystem": True}}),
        ({"image": "a", "expose": ["9000"]}, {"image": "a", "ports": [{"name": "tcp-9000", "container": 9000}]}),
        ({"image": "a", "ports": ["8080:80"]},
         {"image": "a", "ports": [{"name": "tcp-80", "container": 80, "host": 8080}],
          "update": {"strategy": "stop-first"}}),
        ({"image": "a", "volumes": ["data:/var/lib/x:ro"]},
         {"image": "a", "volumes": [{"name": "data", "mountPath": "/var/lib/x", "readOnly": True}]}),
        ({"image": "a", "environment": {"A": 1, "B": True}},
         {"image": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "true"}]}),
    ],
    ids=["image", "string-command", "entrypoint", "replicas", "resources", "restart", "security", "expose",
         "published", "volume", "env-types"],
)  # fmt: skip
def test_maps(svc: dict[str, Any], expected: dict[str, Any]) -> None:
    assert one(svc)[0] == expected


@pytest.mark.parametrize(
    ("svc", "warning"),
    [
        ({"image": "a", "depends_on": {"db": {}}}, "services.web.depends_on: meshop starts every service on its own"),
        ({"image": "a", "networks": {"x": None}}, "services.web.networks: every service reaches"),
        ({"image": "a", "volumes": ["/srv/x:/x"]}, "services.web.volumes: bind mount of /srv/x at /x left out"),
        ({"build": "."}, "services.web.build: meshop builds no images"),
        ({"image": "a", "privileged": True}, "services.web.privileged: privileged needs a Node policy"),
        (
            {"image": "a", "healthcheck": {"test": ["CMD", "true"]}},
            "services.web.healthcheck: meshop checks by HTTP or TCP only",
        ),
        ({"image": "a", "sysctls": {"x": 1}}, "services.web.sysctls: meshop cannot express sysctls"),
    ],
)
def test_warns_about_what_meshop_cannot_express(svc: dict[str, Any], warning: str) -> None:
    assert any(w.startswith(warning) for w in one(svc)[1]), one(svc)[1]


def test_secrets_are_references_with_a_kv_put_line_never_values() -> None:
    project = {
        "services": {
            "db": {
                "image": "postgres:16",
                "environment": {"POSTGRES_PASSWORD_FILE": "/run/secrets/db_pw", "API_TOKEN": "s3cr3t-value"},
                "secrets": ["db_pw"],
            }
        },
        "secrets": {"db_pw": {"file": "/abs/pw.txt"}},
    }
    result = convert(project)
    env = result.documents[0]["spec"]["env"]
    assert env == [
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"consulKey": "meshop/secrets/db/db-pw"}},
        {"name": "API_TOKEN", "valueFrom": {"consulKey": "meshop/secrets/db/api-token"}},
    ]
    assert [(s.key, s.source) for s in result.secrets] == [
        ("meshop/secrets/db/db-pw", "@/abs/pw.txt"),
        ("meshop/secrets/db/api-token", "-"),
    ]
    assert "s3cr3t-value" not in repr(result)


def test_health_and_routes() -> None:
    spec, _ = one(
        {
            "image": "a",
            "healthcheck": {
                "test": ["CMD-SHELL", "curl -fs http://localhost:3000/health || exit 1"],
                "interval": "30s",
            },
            "labels": {"traefik.http.routers.a.rule": "Host(`a.example.com`) && PathPrefix(`/api`)"},
        }
    )
    assert spec["health"] == {"http": {"port": 3000, "path": "/health"}, "interval": "30s"}
    assert spec["route"] == {"host": "a.example.com", "port": 3000, "path": "/api"}
    assert spec["ports"] == [{"name": "tcp-3000", "container": 3000}]


def test_domain_routes_http_services_but_not_databases() -> None:
    result = convert(
        {"services": {"app": {"image": "a", "ports": ["80"]}, "db": {"image": "b", "ports": ["5432"]}}},
        domain="example.com",
    )
    routes = {d["metadata"]["name"]: d["spec"].get("route") for d in result.documents}
    assert routes == {"app": {"host": "app.example.com", "port": 80}, "db": None}


@pytest.mark.parametrize(
    ("labels", "route"),
    [
        ({"traefik.frontend.rule": "Host:a.example.com", "traefik.port": "81"}, ("a.example.com", "/", 81)),
        # str.strip() takes "\x1f" where int() refuses it (hypothesis found the crash); "²" is no port
        ({"traefik.frontend.rule": "Host:a.example.com", "traefik.port": "81\x1f"}, ("a.example.com", "/", 81)),
        ({"traefik.frontend.rule": "Host:a.example.com", "traefik.port": "²"}, ("a.example.com", "/", None)),
        ({"caddy": "http://b.example.com", "caddy.reverse_proxy": "{{upstreams 8080}}"}, ("b.example.com", "/", 8080)),
        ({"traefik.enable": "false", "traefik.http.routers.x.rule": "Host(`c.example.com`)"}, None),
        ({"com.example.x": "y"}, None),
    ],
)
def test_route_labels(labels: dict[str, str], route: tuple[str, str, int] | None) -> None:
    found = route_labels(labels)
    assert (found and (found.hosts[0], found.path, found.port)) == route or (found is None and route is None)


def test_warnings_point_at_the_line_even_through_a_merge_key() -> None:
    text = "x-base: &base\n  depends_on: [db]\nservices:\n  web:\n    <<: *base\n    image: a\n    links: [db]\n"
    lines = SourceLines([("compose.yaml", text)])
    assert (lines.locate("web", "depends_on"), lines.locate("web", "links")) == ("compose.yaml:2", "compose.yaml:7")
    assert lines.locate("web", "unknown") == "compose.yaml:4"


@pytest.mark.parametrize(
    ("value", "quantity"), [("512m", "512Mi"), ("1g", "1Gi"), ("1.5G", "1536Mi"), (1048577, 1048577), ("x", None)]
)
def test_memory(value: object, quantity: object) -> None:
    assert fields.memory(value) == quantity


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_published = st.builds("{}:{}".format, st.integers(0, 70000), st.integers(0, 70000))
_test = st.one_of(_text, st.lists(_text, max_size=3))
_service = st.fixed_dictionaries(
    {"image": st.one_of(st.just("nginx:1"), _text)},
    optional={
        "command": st.one_of(_text, st.lists(_text, max_size=3)),
        "ports": st.lists(st.one_of(st.integers(-5, 70000).map(str), _text, _published), max_size=4),
        "environment": st.dictionaries(_text, st.one_of(_text, st.none(), st.integers())),
        "volumes": st.lists(st.one_of(_text, st.builds("{}:{}".format, _text, _text)), max_size=3),
        "mem_limit": st.one_of(_text, st.integers(-1, 2**40)),
        "cpus": st.one_of(_text, st.floats(allow_nan=True)),
        "user": _text,
        "restart": _text,
        "labels": st.dictionaries(st.sampled_from(["caddy", "traefik.port", "traefik.frontend.rule"]), _text),
        "healthcheck": st.fixed_dictionaries({"test": _test, "interval": _text}),
        "deploy": st.fixed_dictionaries({"replicas": st.integers(-3, 300)}),
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _service, min_size=1, max_size=3), st.sampled_from([None, "example.com"]))
def test_whatever_the_project_every_document_is_valid(services: dict[str, Any], domain: str | None) -> None:
    result = convert({"services": services}, domain=domain)
    assert len(result.documents) == len(services)
    assert len({d["metadata"]["name"] for d in result.documents}) == len(services)
    for doc in result.documents:
        assert validate(doc) == [], doc
