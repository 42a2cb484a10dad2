"""validate / diff / apply refuse a route host another service owns, naming the owner."""

from __future__ import annotations

import json

import pytest

from meshop.client.ownership import Claims, read_claims, route_violations
from meshop.client.sources import SourcedDocument
from meshop.consul.store import Entry, Listing
from meshop.model import keys
from meshop.model.records import RouteRecord


def doc(name: str, host: str | None = "web.example.com", image: str = "busybox:1") -> dict:
    spec: dict = {"image": image, "ports": [{"name": "http", "container": 80}]}
    if host:
        spec["route"] = {"host": host, "port": "http"}
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def stored(name: str, created: int, **kw) -> tuple[str, Entry]:  # type: ignore[no-untyped-def]
    return name, Entry(keys.desired_service(name), json.dumps(doc(name, **kw)).encode(), created + 1, created)


def claims(*services: tuple[str, Entry], routes: dict[str, str] | None = None) -> Claims:
    return Claims(dict(services), {h: RouteRecord(h, s) for h, s in (routes or {}).items()})


@pytest.mark.parametrize(
    ("cluster", "applying", "owner"),
    [
        pytest.param(claims(), ["aaa"], None, id="free-host"),
        pytest.param(claims(stored("web", 5), routes={"web.example.com": "web"}), ["aaa"], "web", id="owned"),
        pytest.param(claims(stored("web", 5), routes={"web.example.com": "web"}), ["web"], None, id="owner-updates"),
        pytest.param(claims(stored("web", 5)), ["aaa"], "web", id="stored-doc-claims-before-its-record"),
        pytest.param(claims(routes={"web.example.com": "gone"}), ["aaa"], None, id="owner-deleted"),
        pytest.param(
            claims(stored("web", 5, host="other.example.com"), routes={"web.example.com": "web"}),
            ["aaa"],
            None,
            id="owner-moved-to-another-host",
        ),
        pytest.param(
            claims(stored("web", 5, image="Not An Image"), routes={"web.example.com": "web"}),
            ["aaa"],
            "web",
            id="invalid-owner-with-a-running-version-keeps-it",
        ),
        pytest.param(claims(), ["web", "aaa"], "web", id="two-new-in-one-apply-first-listed-wins"),
    ],
)
def test_route_violations(cluster: Claims, applying: list[str], owner: str | None) -> None:
    documents = [SourcedDocument(f"{n}.yaml", doc(n)) for n in applying]
    violations = route_violations(documents, cluster)
    if owner is None:
        assert violations == []
    else:
        (violation,) = violations
        assert violation.path.endswith(": spec.route.host") and violation.path.startswith("aaa.yaml")
        assert f"belongs to service {owner}" in violation.reason


def test_services_without_routes_are_never_refused() -> None:
    documents = [SourcedDocument("plain.yaml", doc("plain", host=None))]
    assert route_violations(documents, claims(stored("web", 5), routes={"web.example.com": "web"})) == []


class FakeStore:
    """``list`` and ``get`` over a dict of relative keys (what ``read_claims`` uses)."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.gets: list[str] = []

    def list(self, prefix: str) -> Listing:
        return Listing(1, tuple(Entry(k, v, 1, 1) for k, v in sorted(self.values.items()) if k.startswith(prefix)))

    def get(self, key: str) -> Entry | None:
        self.gets.append(key)
        return Entry(key, self.values[key], 1, 1) if key in self.values else None


def test_read_claims_keeps_only_documents_that_can_claim_the_hosts() -> None:
    values = {
        keys.desired_service(f"s{i}"): json.dumps(doc(f"s{i}", host=f"s{i}.example.com")).encode() for i in range(50)
    }
    values[keys.desired_service("yaml-owner")] = b"kind: Service\nspec: {route: {host: web.example.com}}\n"
    values[keys.route("web.example.com")] = json.dumps(RouteRecord("web.example.com", "owner").to_dict()).encode()
    values[keys.desired_service("owner")] = json.dumps(doc("owner", host="web.example.com")).encode()
    store = FakeStore(values)
    claims = read_claims(store, {"web.example.com"})  # type: ignore[arg-type]
    assert sorted(claims.services) == ["owner", "yaml-owner"]  # 2 of 52 documents are parsed later
    assert claims.routes["web.example.com"].service == "owner"
    assert store.gets == [keys.route("web.example.com"), keys.DESIRED_GATEWAY]
    assert claims.dashboard_host == ""


def test_the_dashboard_host_is_refused_before_anything_is_written() -> None:
    gateway = {"apiVersion": "meshop.io/v1alpha1", "kind": "Gateway", "metadata": {"name": "gateway"}}
    gateway["spec"] = {
        "domains": ["example.com"],
        "tls": {"mode": "internal"},
        "dashboard": {"host": "dash.example.com"},
    }
    found = read_claims(FakeStore({keys.DESIRED_GATEWAY: json.dumps(gateway).encode()}), {"dash.example.com"})  # type: ignore[arg-type]
    assert found.dashboard_host == "dash.example.com"
    documents = [SourcedDocument("phish.yaml", doc("phish", host="dash.example.com"))]
    (violation,) = route_violations(documents, found)
    assert violation.path == "phish.yaml: spec.route.host"
    assert "is the dashboard's (the Gateway document's spec.dashboard.host)" in violation.reason
    assert route_violations([SourcedDocument("web.yaml", doc("web"))], found) == []
