"""``get -o yaml|json`` applies back unchanged, and ``meshop edit`` with real EDITOR scripts, against the
test Consul (ACLs on: the operator's token for edit and apply, read-only for get and diff)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.support import acl

WEB = """\
apiVersion: meshop.io/v1alpha1
kind: Service
metadata: {name: web, labels: {team: a}}
spec:
  image: meshop-test/busybox:1
  ports: [{name: http, container: 80}]
  env: [{name: GREETING, value: "yes"}]
  replicas: 2
"""
GATEWAY = """\
apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {name: edge, annotations: {owner: ops}}
spec:
  domains: [example.test]
  tls: {mode: internal}
"""
NODE = "apiVersion: meshop.io/v1alpha1\nkind: Node\nmetadata: {name: n1, labels: {zone: a}}\nspec: {cordon: true}\n"


@pytest.fixture
def applied(meshop, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(WEB)
    (tmp_path / "n1.yaml").write_text(NODE)
    (tmp_path / "gw.yaml").write_text(GATEWAY)
    files = ("-f", str(tmp_path / "web.yaml"), "-f", str(tmp_path / "n1.yaml"), "-f", str(tmp_path / "gw.yaml"))
    assert meshop("apply", *files)[0] == 0


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("kind", "name"), [("service", "web"), ("node", "n1"), ("gateway", "edge")])
def test_get_output_applies_back_unchanged(applied, meshop, tmp_path: Path, fmt: str, kind: str, name: str) -> None:
    code, out, err = meshop("get", kind, name, "-o", fmt)
    assert (code, err) == (0, "")
    doc = yaml.safe_load(out)
    assert list(doc)[:3] == ["apiVersion", "kind", "metadata"] and "status" in doc  # the server's view
    (tmp_path / f"got.{fmt}").write_text(out)
    assert meshop("diff", "-f", str(tmp_path / f"got.{fmt}"))[:2] == (0, f"{kind}/{name} unchanged\n")
    assert meshop("apply", "-f", str(tmp_path / f"got.{fmt}"))[:2] == (0, f"{kind}/{name} unchanged\n")


def test_a_listing_applies_back_from_stdin(applied, meshop, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = meshop("get", "services", "-o", "yaml")
    assert code == 0 and out.count("kind: Service") == 1
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.encode())))
    assert meshop("apply", "-f", "-")[:2] == (0, "service/web unchanged\n")
    code, out, _ = meshop("get", "services", "-o", "json")
    assert [item["metadata"]["name"] for item in json.loads(out)] == ["web"]  # a list, even of one


def editor(tmp_path: Path, body: str) -> str:
    """An EDITOR script (sh) running ``body`` with the file to edit as $1; returns the command line."""
    script = tmp_path / "editor.sh"
    script.write_text("#!/bin/sh\nset -e\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def replicas(store: KVStore) -> int:
    return json.loads(store.get(keys.desired_service("web")).value)["spec"]["replicas"]


def test_edit_validates_shows_the_diff_and_writes(
    applied, meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's/replicas: 2/replicas: 3/' \"$1\"\n"))
    code, out, err = meshop("edit", "svc", "web")
    assert (code, err) == (0, "")
    assert "-  replicas: 2\n+  replicas: 3\n" in out and out.endswith("service/web edited\n")
    assert replicas(store) == 3

    index = store.get(keys.desired_service("web")).modify_index
    monkeypatch.setenv("EDITOR", "true")  # saved as it was
    assert meshop("edit", "service", "web")[:2] == (0, "service/web unchanged (nothing written)\n")
    assert store.get(keys.desired_service("web")).modify_index == index


def test_an_invalid_edit_reopens_with_the_errors_on_top(
    applied, meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "seen"
    # first save: an invalid replica count; second: keep what was shown (errors on top), fix it
    monkeypatch.setenv(
        "EDITOR",
        editor(
            tmp_path,
            f'if [ -e {seen}.1 ]; then cp "$1" {seen}.2; sed -i "s/replicas: -1/replicas: 4/" "$1"; '
            f'else cp "$1" {seen}.1; sed -i "s/replicas: 2/replicas: -1/" "$1"; fi\n',
        ),
    )
    code, out, err = meshop("edit", "service", "web")
    assert code == 0, err
    assert "service/web: invalid, reopening the editor" in err
    second = (tmp_path / "seen.2").read_text().splitlines()
    assert second[0] == "# error: invalid document (1 error(s)):"
    assert second[1] == "# error:   service/web: spec.replicas: -1 is less than the minimum of 0"
    assert "  replicas: -1" in second  # the text as saved, under the errors
    assert replicas(store) == 4 and out.endswith("service/web edited\n")


def test_an_invalid_edit_saved_again_unchanged_ends_the_edit(
    applied, meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITOR", editor(tmp_path, 'sed -i "s/replicas: 2/replicas: -1/" "$1"\n'))
    code, out, err = meshop("edit", "service", "web")
    assert (code, out) == (1, "")
    assert "Error: service/web: saved again unchanged, still invalid; nothing written. Your edit is kept in " in err
    assert err.endswith("service/web: spec.replicas: -1 is less than the minimum of 0\n")  # the errors, last
    kept = err.split("kept in ", 1)[1].split("\n", 1)[0]
    assert "replicas: -1" in Path(kept).read_text()
    os.unlink(kept)
    assert replicas(store) == 2


def test_an_editor_exiting_non_zero_or_an_empty_save_writes_nothing(
    applied, meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = store.get(keys.desired_service("web")).modify_index
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's/replicas: 2/replicas: 5/' \"$1\"; exit 3\n"))
    code, out, err = meshop("edit", "service", "web")
    assert (code, out) == (1, "")
    assert "Edit cancelled: the editor" in err and "exited with 3; nothing written" in err
    monkeypatch.setenv("EDITOR", editor(tmp_path, ': > "$1"\n'))
    code, out, err = meshop("edit", "service", "web")
    assert (code, out, err) == (0, "", "Edit cancelled: the saved file was empty; service/web not written\n")
    assert store.get(keys.desired_service("web")).modify_index == index


def test_a_concurrent_change_is_refused_not_overwritten(
    applied, meshop, consul_server, prefix: str, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the editor is open, another writer applies replicas: 7; the edit's check-and-set fails."""
    other = tmp_path / "other.yaml"
    other.write_text(WEB.replace("replicas: 2", "replicas: 7"))
    token = acl.token_for(consul_server.addr, prefix, ["apply"])
    apply = [sys.executable, "-m", "meshop", "--consul-addr", consul_server.addr, "--prefix", prefix]
    apply += [*(["--token", token] if token else []), "apply", "-f", str(other)]
    monkeypatch.setenv(
        "EDITOR", editor(tmp_path, " ".join(apply) + " >/dev/null\nsed -i 's/replicas: 2/replicas: 3/' \"$1\"\n")
    )
    code, _, err = meshop("edit", "service", "web")
    assert code == 2  # a lost check-and-set, as apply's
    assert "Error: service/web changed in Consul while you edited it; nothing written (check-and-set)" in err
    assert replicas(store) == 7
    kept = err.rsplit("kept in ", 1)[1].split(":", 1)[0]
    assert "replicas: 3" in Path(kept).read_text()
    os.unlink(kept)


def test_edit_refuses_a_rename_and_a_missing_service(
    applied, meshop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert meshop("edit", "service", "nope")[0] == 1
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's/name: web/name: api/' \"$1\"\n"))
    code, _, err = meshop("edit", "service", "web")
    assert code == 1 and "metadata.name must stay 'web'" in err
    Path(err.split("kept in ", 1)[1].split("\n", 1)[0]).unlink()


def test_edit_of_a_node_without_a_document_creates_one(
    meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITOR", editor(tmp_path, "printf 'spec: {drain: true}\\n' >> \"$1\"\n"))
    code, _, err = meshop("edit", "node", "n2")
    assert code == 1 and "node/n2 not found: no agent registered it" in err  # a typo makes no phantom node
    store.put(keys.node("n2"), "{}")  # its agent's record
    code, out, err = meshop("edit", "node", "n2")
    assert (code, err) == (0, "") and out.endswith("node/n2 created\n")
    assert json.loads(store.get(keys.desired_node("n2")).value)["spec"] == {"drain": True}


def test_get_gateway_without_a_name_applies_back_from_stdin(applied, meshop, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = meshop("get", "gateway", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert code == 0 and doc["metadata"]["name"] == "edge"
    assert doc["status"] == {"gateways": [], "dns": None}  # no meshop-gateway registered, no DNS writer
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.encode())))
    assert meshop("apply", "-f", "-")[:2] == (0, "gateway/edge unchanged\n")
    code, out, _ = meshop("get", "gw")
    assert code == 0 and "edge" in out and "example.test" in out and "0/0 passing" in out


def test_get_and_edit_of_a_gateway_not_stored_or_of_another_name(meshop, tmp_path: Path) -> None:
    code, _, err = meshop("get", "gateway", "-o", "yaml")
    assert code == 1 and "gateway not found (no Gateway document in desired/gateway)" in err
    assert meshop("edit", "gateway", "edge")[0] == 1  # no bare Gateway: its domains are required
    (tmp_path / "gw.yaml").write_text(GATEWAY)
    assert meshop("apply", "-f", str(tmp_path / "gw.yaml"))[0] == 0
    assert meshop("get", "gateway", "other")[0] == 1
    code, _, err = meshop("edit", "gateway", "other")
    assert code == 1 and "gateway/other not found (the stored one is 'edge')" in err


def test_edit_gateway_validates_shows_the_diff_and_writes(
    applied, meshop, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "EDITOR", editor(tmp_path, "sed -i 's/- example.test/- example.test\\n  - other.test/' \"$1\"\n")
    )
    code, out, err = meshop("edit", "gateway", "edge")
    assert (code, err) == (0, ""), out
    assert "+  - other.test\n" in out and out.endswith("gateway/edge edited\n")
    assert json.loads(store.get(keys.DESIRED_GATEWAY).value)["spec"]["domains"] == ["example.test", "other.test"]
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's/mode: internal/mode: sometimes/' \"$1\"\n"))
    code, _, err = meshop("edit", "gateway", "edge")  # invalid, then saved again unchanged: nothing written
    assert code == 1 and "spec.tls.mode" in err
    assert json.loads(store.get(keys.DESIRED_GATEWAY).value)["spec"]["tls"]["mode"] == "internal"
    Path(err.split("kept in ", 1)[1].split("\n", 1)[0]).unlink()
