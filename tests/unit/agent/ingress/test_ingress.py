"""The node's routes as a pure function: which local containers each routed service's snippet points at,
and the exact snippet text (tables; the real Caddy loads them in tests/integration/routing)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from meshop.agent.ingress.snippets import (
    FALLBACK_FILE,
    IngressSettings,
    LocalRoute,
    file_service,
    local_routes,
    render_ingress,
    snippet_file,
)
from meshop.agent.planning.plan import Container
from meshop.model import ServiceSpec

SETTINGS = IngressSettings(port=8081, bind=("127.0.0.1",), upstream_host="127.0.0.1", host_network_host="10.0.0.5")
HTTP = {"image": "img:1", "ports": [{"name": "http", "container": 8080}]}
ROUTE = {"route": {"host": "web.example.com", "port": "http"}}
HEALTH = {"health": {"http": {"path": "/", "port": "http"}}}


def spec(**extra: Any) -> ServiceSpec:
    return ServiceSpec.from_dict({**HTTP, **extra})


def container(cid: str, port: int | None = 32768, state: str = "running", service: str = "web", replica: int = 0):
    ports = {"8080/tcp": port} if port else {}
    return Container(cid, f"{service}-{cid}", service, replica, "h", "h", 1, "img:1", state, host_ports=ports)


CASES = [
    # (id, specs, serving, containers, healthy, expected upstreams by service)
    (
        "healthy replica",
        {"web": spec(**ROUTE, **HEALTH)},
        {("web", 0): "a"},
        [container("a")],
        {"a": True},
        {"web": (("a", "127.0.0.1:32768"),)},
    ),
    ("probe not passed yet", {"web": spec(**ROUTE, **HEALTH)}, {("web", 0): "a"}, [container("a")], {}, {"web": ()}),
    ("probe failing", {"web": spec(**ROUTE, **HEALTH)}, {("web", 0): "a"}, [container("a")], {"a": False}, {"web": ()}),
    (
        "no health check: running is ready",
        {"web": spec(**ROUTE)},
        {("web", 0): "a"},
        [container("a")],
        {},
        {"web": (("a", "127.0.0.1:32768"),)},
    ),
    ("exited container", {"web": spec(**ROUTE)}, {("web", 0): "a"}, [container("a", state="exited")], {}, {"web": ()}),
    (
        "start-first: only the served container, not the new one still starting",
        {"web": spec(**ROUTE, **HEALTH)},
        {("web", 0): "old"},
        [container("old", 32768), container("new", 32769)],
        {"old": True, "new": False},
        {"web": (("old", "127.0.0.1:32768"),)},
    ),
    (
        "start-first: the plan switched to the new container",
        {"web": spec(**ROUTE, **HEALTH)},
        {("web", 0): "new"},
        [container("old", 32768), container("new", 32769)],
        {"old": True, "new": True},
        {"web": (("new", "127.0.0.1:32769"),)},
    ),
    (
        "two replicas, sorted by address",
        {"web": spec(**ROUTE)},
        {("web", 0): "b", ("web", 1): "a"},
        [container("b", 40001), container("a", 40000, replica=1)],
        {},
        {"web": (("a", "127.0.0.1:40000"), ("b", "127.0.0.1:40001"))},
    ),
    ("service without a route", {"job": spec()}, {("job", 0): "a"}, [container("a", service="job")], {}, {}),
    (
        "route port not published",
        {"web": spec(**ROUTE)},
        {("web", 0): "a"},
        [container("a", port=None)],
        {},
        {"web": ()},
    ),
    ("served container unknown", {"web": spec(**ROUTE)}, {("web", 0): "gone"}, [], {}, {"web": ()}),
    (
        "host networking: the advertise address and the container port",
        {"web": spec(**ROUTE, networkMode="host")},
        {("web", 0): "a"},
        [container("a", port=None)],
        {},
        {"web": (("a", "10.0.0.5:8080"),)},
    ),
]


@pytest.mark.parametrize(("specs", "serving", "containers", "healthy", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_local_routes_follow_the_served_ready_containers(specs, serving, containers, healthy, expected) -> None:
    routes = local_routes(specs, serving, {c.id: c for c in containers}, healthy, SETTINGS)
    assert {name: route.upstreams for name, route in routes.items()} == expected


def test_snippet_text_for_a_path_route() -> None:
    route = LocalRoute("api", "api.example.com", "/v1/", (("a", "127.0.0.1:40000"), ("b", "127.0.0.1:40001")))
    files = render_ingress({"api": route}, SETTINGS).files
    catch_all = "# rendered by meshop agent - catch-all\nhttp://:8081 {\n\tbind 127.0.0.1\n\tabort\n}\n"
    assert files[FALLBACK_FILE] == catch_all
    assert files["meshop-svc-api.caddy"] == (
        "# rendered by meshop agent for service api - edits are overwritten\n"
        "http://api.example.com:8081 {\n"
        "\tbind 127.0.0.1\n"
        "\thandle /v1* {\n"
        "\t\treverse_proxy 127.0.0.1:40000 127.0.0.1:40001 {\n"
        "\t\t\tlb_policy round_robin\n"
        "\t\t\tlb_try_duration 1s\n"
        "\t\t\tlb_try_interval 100ms\n"
        "\t\t\tfail_duration 0s\n"
        "\t\t\tmax_fails 1\n"
        "\t\t\tunhealthy_status 502 503 504\n"
        "\t\t\ttrusted_proxies 127.0.0.0/8 ::1/128\n"  # issue 24: gateways are added as they claim addresses
        "\t\t}\n"
        "\t}\n"
        "\thandle {\n"
        '\t\trespond "meshop: no route" 404\n'
        "\t}\n"
        "\thandle_errors {\n"
        "\t\tabort\n"
        "\t}\n"
        "}\n"
    )


def test_a_service_without_ready_replicas_has_no_file_only_the_catch_all() -> None:
    rendered = render_ingress({"web": LocalRoute("web", "web.example.com", "/")}, SETTINGS)
    assert set(rendered.files) == {FALLBACK_FILE}
    assert rendered.refused == {}


def test_an_unsafe_value_refuses_that_service_only() -> None:
    good = LocalRoute("good", "good.example.com", "/", (("a", "127.0.0.1:40000"),))
    evil = LocalRoute("evil", "evil.example.com {\n}\nimport /etc", "/", (("b", "127.0.0.1:40001"),))
    rendered = render_ingress({"good": good, "evil": evil}, SETTINGS)
    assert set(rendered.files) == {FALLBACK_FILE, "meshop-svc-good.caddy"}
    assert "not a hostname" in rendered.refused["evil"]
    assert "import" not in "".join(rendered.files.values())


def test_bind_addresses_and_ipv6_upstreams() -> None:
    settings = replace(SETTINGS, bind=("127.0.0.1", "100.64.0.7"))
    route = LocalRoute("web", "web.example.com", "/", (("a", "[::1]:40000"),))
    text = render_ingress({"web": route}, settings).files["meshop-svc-web.caddy"]
    assert "\tbind 127.0.0.1 100.64.0.7\n" in text
    assert "reverse_proxy [::1]:40000 {" in text


def test_file_names_map_back_to_services() -> None:
    assert snippet_file("web") == "meshop-svc-web.caddy"
    assert file_service("meshop-svc-web.caddy") == "web"
    assert file_service(FALLBACK_FILE) is None
