"""apply / diff / validate / delete / nodes against a real Consul: outputs, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

from meshop.consul.store import KVStore
from meshop.model import keys, load_documents
from tests.integration.operator.sim import SimNode
from tests.support.procs import free_port

EXAMPLES = Path(__file__).resolve().parents[3] / "charts" / "examples"

WEB = """\
apiVersion: meshop.io/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: meshop-test/busybox:1
  ports: [{name: http, container: 80}]
  replicas: %d
"""


def test_apply_creates_then_reports_unchanged_then_configured(meshop, store: KVStore, tmp_path: Path) -> None:
    code, out, err = meshop("apply", "-f", str(EXAMPLES))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "gateway/gateway created",
        "service/hello created",
        "node/local created",
        "service/whoami created",
    ]
    stored = load_documents(store.get(keys.desired_service("whoami")).value)[0]
    assert stored == load_documents((EXAMPLES / "whoami.yaml").read_text())[0]
    generation = store.get(keys.desired_service("whoami")).modify_index

    code, out, _ = meshop("apply", "-f", str(EXAMPLES / "whoami.yaml"))
    assert (code, out) == (0, "service/whoami unchanged\n")
    assert store.get(keys.desired_service("whoami")).modify_index == generation  # not rewritten

    web = tmp_path / "web.yaml"
    web.write_text(WEB % 1)
    assert meshop("apply", "-f", str(web))[1] == "service/web created\n"
    web.write_text(WEB % 3)
    assert meshop("apply", "-f", str(web))[1] == "service/web configured\n"
    assert json.loads(store.get(keys.desired_service("web")).value)["spec"]["replicas"] == 3


def test_apply_writes_nothing_when_any_document_is_invalid(meshop, store: KVStore, tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(WEB % 1)
    (tmp_path / "b-bad.yaml").write_text(
        "apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: bad}\n"
        "spec:\n  image: meshop-test/busybox:1\n  ports: [{name: http, container: 70000}]\n"
        "  route: {host: 'x.example.com {', port: http}\n"
    )
    code, out, err = meshop("apply", "-f", str(tmp_path))
    assert code == 1
    assert out == ""
    assert "b-bad.yaml: spec.ports[0].container: 70000 is greater than the maximum of 65535" in err
    assert "b-bad.yaml: spec.route.host: must be a lowercase DNS hostname" in err
    assert "Traceback" not in err
    assert store.list(keys.DESIRED).entries == ()


def test_diff_shows_the_change_and_exits_1_only_when_there_is_one(meshop, tmp_path: Path) -> None:
    web = tmp_path / "web.yaml"
    web.write_text(WEB % 1)
    code, out, _ = meshop("diff", "-f", str(web))
    assert code == 1
    assert out.startswith("service/web would be created\n")
    meshop("apply", "-f", str(web))
    assert meshop("diff", "-f", str(web))[:2] == (0, "service/web unchanged\n")
    web.write_text(WEB % 2)
    code, out, _ = meshop("diff", "-f", str(web))
    assert code == 1
    assert "-  replicas: 1\n+  replicas: 2\n" in out


def test_validate_needs_no_consul_and_lists_every_error(tmp_path: Path) -> None:
    from meshop.cli.main import run

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: Bad}\nspec: {replicas: -1}\n")
    code = run(["--consul-addr", f"127.0.0.1:{free_port()}", "validate", "-f", str(bad)])
    assert code == 1


def test_delete_and_not_found(meshop, store: KVStore, tmp_path: Path) -> None:
    web = tmp_path / "web.yaml"
    web.write_text(WEB % 1)
    meshop("apply", "-f", str(web))
    assert meshop("delete", "service", "web")[:2] == (0, "service/web deleted\n")
    assert store.get(keys.desired_service("web")) is None
    code, _, err = meshop("delete", "service", "web")
    assert code == 1
    assert "service/web not found" in err


def test_cordon_drain_uncordon_edit_the_node_document(meshop, store: KVStore) -> None:
    store.put(keys.node("n1"), '{"name": "n1", "address": "127.0.0.1"}')  # a registered node (unknown: exit 1)
    assert meshop("nodes", "cordon", "n1")[:2] == (0, "node/n1 cordoned\n")
    doc = json.loads(store.get(keys.desired_node("n1")).value)
    assert doc["spec"] == {"cordon": True}
    assert meshop("nodes", "cordon", "n1")[1] == "node/n1 already cordoned\n"
    meshop("nodes", "drain", "n1")
    assert json.loads(store.get(keys.desired_node("n1")).value)["spec"] == {"cordon": True, "drain": True}
    meshop("nodes", "uncordon", "n1")
    assert json.loads(store.get(keys.desired_node("n1")).value)["spec"] == {"cordon": False, "drain": False}
    code, _, err = meshop("nodes", "cordon", "Not_A_Node")
    assert code == 1 and "must be an RFC 1123 label" in err


def test_nodes_inventory_records_the_addresses_a_node_may_be_dialled_at(meshop, store: KVStore) -> None:
    """Issue 24: with the operator's token; a numeric-looking name or loopback is refused before any write."""
    assert meshop("nodes", "inventory", "n1", "100.64.0.11", "fd7a::11")[:2] == (
        0,
        "node/n1 inventory: 100.64.0.11, fd7a::11\n",
    )
    assert json.loads(store.get(keys.inventory_node("n1")).value) == {"addresses": ["100.64.0.11", "fd7a::11"]}
    assert meshop("nodes", "inventory", "n1", "100.64.0.11", "fd7a::11")[1] == "node/n1 inventory unchanged\n"
    for bad in ("127.1", "127.0.0.1", "0x7f.1"):
        code, _, err = meshop("nodes", "inventory", "n1", bad)
        assert code == 1 and "node/n1:" in err, err
    assert json.loads(store.get(keys.inventory_node("n1")).value) == {"addresses": ["100.64.0.11", "fd7a::11"]}


def test_consul_unreachable_is_one_line_with_exit_code_2(tmp_path: Path, capsys) -> None:
    from meshop.cli.main import run

    port = free_port()
    code = run(["--consul-addr", f"127.0.0.1:{port}", "apply", "-f", str(EXAMPLES / "whoami.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0
    assert f"Consul at http://127.0.0.1:{port} is unreachable" in err
    assert "CONSUL_HTTP_ADDR" in err


def test_diff_shows_the_placement_the_controller_would_plan(
    meshop, store: KVStore, prefix: str, tmp_path: Path
) -> None:
    a, b = SimNode(store, f"{prefix}-a").join(labels={"zone": "x"}), SimNode(store, f"{prefix}-b").join()
    try:
        web = tmp_path / "web.yaml"
        web.write_text(WEB % 2)
        code, out, _ = meshop("diff", "-f", str(web))
        assert code == 1
        assert f"  service/web: nowhere -> {a.name}=1, {b.name}=1\n" in out

        pinned = tmp_path / "pinned.yaml"
        pinned.write_text((WEB % 1).replace("name: web", "name: pinned") + "  placement: {nodeSelector: {zone: y}}\n")
        out = meshop("diff", "-f", str(pinned))[1]
        assert "  service/pinned: nowhere (unchanged); NoMatchingNode: " in out
        assert "nodeSelector" in out.split("NoMatchingNode: ")[1], out
    finally:
        a.close()
        b.close()
