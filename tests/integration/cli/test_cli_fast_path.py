"""``meshop apply`` through the fast path (``meshop.cli.fast``) and through click, against the session's
Consul with ACLs on: the same writes, exit codes, stdout and stderr, step by step (the unit table,
tests/unit/cli/test_fast_path.py, covers everything that needs no Consul)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from meshop.cli import fast, main
from meshop.consul.store import KVStore
from meshop.model import keys
from tests.support import acl

WEB = "apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  image: nginx:1\n  replicas: %d\n"
API = WEB.replace("name: web", "name: api") % 1


def steps(addr: str, prefix: str, tmp: Path) -> list[tuple[str, list[str], str]]:
    """(what, argv, web.yaml's new text or "" to keep it): created, unchanged, configured, two files, the
    ``--opt=VALUE`` forms, no token (ACL denied: exit 2), a wrong token, a directory."""
    token = acl.token_for(addr, prefix, ["apply"])
    assert token, "the session's Consul runs with ACLs"
    web, api = tmp / "web.yaml", tmp / "api.yaml"
    api.write_text(API)
    common = ["--consul-addr", addr, "--prefix", prefix, "--token", token]
    return [
        ("created", [*common, "apply", "-f", str(web)], WEB % 1),
        ("unchanged", [*common, "apply", "--filename", str(web)], WEB % 1),
        ("configured", [*common, "apply", "-f", str(web)], WEB % 2),
        ("two-files", [*common, "apply", "-f", str(web), "-f", str(api)], WEB % 3),
        (
            "equals-forms",
            [f"--consul-addr={addr}", f"--prefix={prefix}", f"--token={token}", "apply", "-f", str(api)],
            "",
        ),
        ("no-token", ["--consul-addr", addr, "--prefix", prefix, "apply", "-f", str(web)], WEB % 4),
        ("wrong-token", ["--consul-addr", addr, "--prefix", prefix, "--token", "nope", "apply", "-f", str(web)], ""),
        ("directory", [*common, "apply", "-f", str(tmp)], WEB % 5),
    ]


def run_steps(
    runner: Callable[[list[str]], int | None], consul_server, prefix: str, store: KVStore, tmp: Path
) -> list[tuple[str, int | None, str, str, int]]:
    store.delete_tree(keys.DESIRED)
    out = []
    for what, argv, web in steps(consul_server.addr, prefix, tmp):
        if web:
            (tmp / "web.yaml").write_text(web)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = runner(argv)
        stored = store.get(keys.desired_service("web"))
        replicas = json.loads(stored.value)["spec"]["replicas"] if stored else 0
        out.append((what, code, stdout.getvalue(), stderr.getvalue(), replicas))
    return out


def test_apply_through_the_fast_path_writes_and_answers_as_click_does(
    consul_server, prefix: str, store: KVStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "MESHOP_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "fast").mkdir()
    (tmp_path / "click").mkdir()
    quick = run_steps(fast.run, consul_server, prefix, store, tmp_path / "fast")
    reference = run_steps(main.run, consul_server, prefix, store, tmp_path / "click")
    assert [step[1:] for step in quick] == [
        (code, out.replace("/click", "/fast"), err, replicas) for _, code, out, err, replicas in reference
    ]
    summary = {what: (code, out, err, replicas) for what, code, out, err, replicas in quick}
    assert summary["created"] == (0, "service/web created\n", "", 1)
    assert summary["unchanged"] == (0, "service/web unchanged\n", "", 1)
    assert summary["configured"] == (0, "service/web configured\n", "", 2)
    assert summary["two-files"] == (0, "service/web configured\nservice/api created\n", "", 3)
    assert summary["equals-forms"][:2] == (0, "service/api unchanged\n")
    assert summary["no-token"][::3] == (2, 3)  # refused, nothing written
    assert "denied reading" in summary["no-token"][2] and "(Permission denied)" in summary["no-token"][2]
    assert summary["wrong-token"][::3] == (2, 3) and "(ACL not found)" in summary["wrong-token"][2]
    assert summary["directory"][:2] == (0, "service/api unchanged\nservice/web configured\n")
