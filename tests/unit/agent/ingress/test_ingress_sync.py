"""NodeIngress with a fake Caddy admin API (the real Caddy: tests/integration/routing): what is written,
what is loaded, rollback and per-file isolation on refusal, repair of hand-edited files, the gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.agent.ingress.snippets import FALLBACK_FILE, IngressSettings, LocalRoute
from meshop.agent.ingress.sync import NodeIngress
from meshop.caddy.admin import CaddyRejected, CaddyUnavailable
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.snippet_dir import SnippetDir

SETTINGS = IngressSettings(port=8081)


class FakeAdmin:
    """Accepts a load unless an imported file routes ``bad.example.com``; remembers what it serves."""

    address = "unix//fake.sock"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.serving: dict[str, str] = {}
        self.loads = 0
        self.down = False

    def load(self, caddyfile: str) -> None:
        if self.down:
            raise CaddyUnavailable("connection refused")
        self.loads += 1
        files = {p.name: p.read_text() for p in sorted(self.folder.glob("*.caddy"))}
        for name, text in files.items():
            if "bad.example.com" in text:
                raise CaddyRejected(f"{self.folder / name}:2 - Error during parsing: ambiguous site definition")
        self.serving = files


@pytest.fixture
def setup(tmp_path: Path) -> tuple[NodeIngress, FakeAdmin, Path]:
    folder = tmp_path / "sites"
    admin = FakeAdmin(folder)
    applier = ConfigApplier(admin, "agent")  # type: ignore[arg-type]
    ingress = NodeIngress(SETTINGS, SnippetDir(folder), applier, lambda: "import sites/*.caddy\n", retry=(5.0, 60.0))
    return ingress, admin, folder


def route(service: str, host: str, *upstreams: tuple[str, str]) -> LocalRoute:
    return LocalRoute(service, host, "/", tuple(upstreams))


WEB = route("web", "web.example.com", ("c1", "127.0.0.1:40000"))
API = route("api", "api.example.com", ("c2", "127.0.0.1:40001"))


def test_writes_loads_and_then_leaves_an_unchanged_config_alone(setup) -> None:
    ingress, admin, _ = setup
    ingress.sync({"web": WEB}, (), now=100.0)
    assert sorted(admin.serving) == [FALLBACK_FILE, "meshop-svc-web.caddy"]
    assert "127.0.0.1:40000" in admin.serving["meshop-svc-web.caddy"]
    assert ingress.errors == {}
    ingress.sync({"web": WEB}, (), now=101.0)
    assert admin.loads == 1


def test_a_hand_edited_or_deleted_file_is_repaired_and_reloaded_and_foreign_files_are_left_alone(setup) -> None:
    ingress, admin, folder = setup
    ingress.sync({"web": WEB}, (), now=100.0)
    good = (folder / "meshop-svc-web.caddy").read_text()
    (folder / "meshop-svc-web.caddy").write_text("http://web.example.com {\n\trespond hacked\n")
    (folder / "mine.caddy").write_text("# the operator's own\n")
    ingress.sync({"web": WEB}, (), now=101.0)
    assert (folder / "meshop-svc-web.caddy").read_text() == good
    assert admin.loads == 2
    (folder / FALLBACK_FILE).unlink()
    ingress.sync({"web": WEB}, (), now=102.0)
    assert (folder / FALLBACK_FILE).exists() and admin.loads == 3
    assert (folder / "mine.caddy").read_text() == "# the operator's own\n"


def test_a_refused_file_is_rolled_back_alone_and_retried_after_its_hold(setup) -> None:
    ingress, admin, folder = setup
    ingress.sync({"web": WEB}, (), now=100.0)
    bad = route("bad", "bad.example.com", ("c3", "127.0.0.1:40002"))
    moved = route("web", "web.example.com", ("c4", "127.0.0.1:40009"))
    ingress.sync({"web": moved, "api": API, "bad": bad}, (), now=110.0)
    # the other changes went through one by one; the refused file is not on disk and not served
    assert "127.0.0.1:40009" in admin.serving["meshop-svc-web.caddy"]
    assert "meshop-svc-api.caddy" in admin.serving
    assert not (folder / "meshop-svc-bad.caddy").exists()
    assert set(ingress.errors) == {"bad"}
    assert ingress.errors["bad"].reason == "RouteRejected"
    assert "ambiguous site definition" in ingress.errors["bad"].message
    loads = admin.loads
    ingress.sync({"web": moved, "api": API, "bad": bad}, (), now=111.0)
    assert admin.loads == loads  # held: the same refused content is not tried again yet
    assert ingress.next_retry(111.0) == pytest.approx(4.0)
    ingress.sync({"web": moved, "api": API, "bad": bad}, (), now=116.0)
    assert admin.loads == loads + 1 and set(ingress.errors) == {"bad"}
    fixed = route("bad", "fixed.example.com", ("c3", "127.0.0.1:40002"))
    ingress.sync({"web": moved, "api": API, "bad": fixed}, (), now=117.0)  # new content: tried at once
    assert "meshop-svc-bad.caddy" in admin.serving and ingress.errors == {}


def test_an_unreachable_admin_api_restores_the_files_and_loads_once_it_answers(setup) -> None:
    ingress, admin, folder = setup
    ingress.sync({"web": WEB}, (), now=100.0)
    before = SnippetDir(folder).read()
    admin.down = True
    ingress.sync({"web": WEB, "api": API}, (), now=101.0)
    assert SnippetDir(folder).read() == before
    assert ingress.errors["api"].reason == "RouteUnavailable"
    admin.down = False
    ingress.sync({"web": WEB, "api": API}, (), now=102.0)
    assert "meshop-svc-api.caddy" in admin.serving and ingress.errors == {}


def test_an_unassigned_service_keeps_its_file_while_its_containers_exist(setup) -> None:
    ingress, admin, _ = setup
    ingress.sync({"web": WEB, "api": API}, (), now=100.0)
    ingress.sync({"web": WEB}, keep={"api"}, now=101.0)
    assert "meshop-svc-api.caddy" in admin.serving
    ingress.sync({"web": WEB}, keep=(), now=102.0)
    assert "meshop-svc-api.caddy" not in admin.serving


def test_gate_counts_a_routed_container_only_once_caddy_sends_it_traffic(setup) -> None:
    ingress, admin, _ = setup
    admin.down = True
    ingress.sync({"web": WEB}, (), now=100.0)
    assert ingress.gate({"c1": 99.0, "other": 50.0}) == {"other": 50.0}
    admin.down = False
    ingress.sync({"web": WEB}, (), now=105.0)
    assert ingress.gate({"c1": 99.0, "other": 50.0}) == {"c1": 105.0, "other": 50.0}


def test_the_node_record_says_caddy_refused_while_a_file_stays_refused_and_clears_once_it_loads(setup) -> None:
    ingress, _, _ = setup
    ingress.sync({"web": WEB}, (), now=100.0)
    assert ingress.load.state is not None and ingress.load.state.loaded
    bad = route("bad", "bad.example.com", ("c3", "127.0.0.1:40002"))
    ingress.sync({"web": WEB, "bad": bad}, (), now=110.0)
    refused = ingress.load.state
    assert refused is not None and not refused.loaded and "ambiguous site definition" in refused.message
    ingress.sync({"web": WEB, "bad": bad}, (), now=111.0)  # held, not retried: still refused, same start
    assert ingress.load.state == refused
    ingress.sync({"web": WEB}, (), now=112.0)  # the refused route is gone: every file loads
    assert ingress.load.state is not None and ingress.load.state.loaded
