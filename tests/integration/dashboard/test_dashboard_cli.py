"""``meshop dashboard`` as a user runs it: serves, stops cleanly on SIGTERM, refuses --actions with a
read-only token and a malformed --password-file with one clear line each."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.cli.conftest import invoke
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.meshop_proc import meshop_process
from tests.support.procs import wait_until


def test_serves_on_loopback_and_stops_on_sigterm(consul_server: ConsulServer, prefix: str, tmp_path: Path) -> None:
    log = tmp_path / "dashboard.log"
    proc = meshop_process(consul_server.addr, prefix, ["dashboard", "--listen", "127.0.0.1:0"], log).start()
    try:
        line = wait_until(lambda: re.search(r"serving (http://\S+) \((.*)\)", log.read_text()), 20, what="serving")
        url, how = line.group(1), line.group(2)  # type: ignore[union-attr]
        assert how == "no login (loopback only); read-only"
        with urllib.request.urlopen(url, timeout=10) as page:
            body = page.read().decode()
        assert page.status == 200 and "<h2>Nodes" in body and "/nodes/" not in body  # read-only: no actions
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text()


def test_actions_need_an_operator_token(consul_server: ConsulServer, prefix: str) -> None:
    readonly = acl.token_for(consul_server.addr, prefix, ["status"])
    code, _, err = invoke(
        consul_server.addr, prefix, "--token", readonly or "", "dashboard", "--actions", role_token=False
    )
    assert code == 1, err
    assert err.startswith(f"Error: --actions needs a token with the operator role for prefix {prefix}")
    assert f"meshop-{prefix}-readonly" in err


def test_password_file_is_checked_before_serving(consul_server: ConsulServer, prefix: str, tmp_path: Path) -> None:
    bad = tmp_path / "pw"
    bad.write_text("hunter2\n")
    code, out, err = invoke(consul_server.addr, prefix, "dashboard", "--password-file", str(bad))
    assert (code, out) == (1, "")
    hint = "make one with `meshop dashboard --hash-password`"
    assert err == f"Error: --password-file {bad}: not scrypt$N$r$p$salt$hash; {hint}\n"
    bad.write_bytes(b"\xff\xfe scrypt\n")  # before: a UnicodeDecodeError traceback
    code, out, err = invoke(consul_server.addr, prefix, "dashboard", "--password-file", str(bad))
    assert (code, out, err) == (1, "", f"Error: --password-file {bad}: not text (make it with --hash-password)\n")


def test_meshop_restart_service_sets_restarted_at_and_needs_the_operator_role(
    consul_server: ConsulServer, prefix: str, store: KVStore
) -> None:
    doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"image": "x:1"}}
    store.put(keys.desired_service("web"), json.dumps(doc))
    readonly = acl.token_for(consul_server.addr, prefix, ["status"]) or ""
    code, _, err = invoke(consul_server.addr, prefix, "--token", readonly, "restart", "svc", "web", role_token=False)
    assert code == 2 and "denied" in err  # Consul refuses the read-only role
    assert json.loads(store.get(keys.desired_service("web")).value) == doc  # type: ignore[union-attr]

    code, out, err = invoke(consul_server.addr, prefix, "restart", "service", "web")
    assert (code, err) == (0, "")
    stored = json.loads(store.get(keys.desired_service("web")).value)  # type: ignore[union-attr]
    assert out == f"service/web restarted (spec.restartedAt {stored['spec']['restartedAt']})\n"
    assert stored == {**doc, "spec": {"image": "x:1", "restartedAt": stored["spec"]["restartedAt"]}}

    code, out, err = invoke(consul_server.addr, prefix, "restart", "service", "nope")
    assert (code, out) == (1, "")
    assert err == f"Error: service/nope not found: no {prefix}/desired/services/nope\n"


def test_a_public_host_must_be_a_hostname_and_requires_a_login(
    consul_server: ConsulServer, prefix: str, tmp_path: Path
) -> None:
    code, out, err = invoke(consul_server.addr, prefix, "dashboard", "--public-host", "Dash Board{")
    assert (code, out, err) == (1, "", "Error: --public-host: 'Dash Board{' is not a lowercase DNS hostname\n")
    log = tmp_path / "dashboard.log"
    args = ["dashboard", "--listen", "127.0.0.1:0", "--public-host", "dash.example.com"]
    proc = meshop_process(consul_server.addr, prefix, args, log).start()
    try:
        line = wait_until(lambda: re.search(r"serving (http://\S+) \((.*)\)", log.read_text()), 20, what="serving")
        assert line.group(2) == "login required; read-only"  # type: ignore[union-attr]
        request = urllib.request.Request(line.group(1) + "fragment/overview", headers={"Host": "dash.example.com"})  # type: ignore[union-attr]
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("answered without a login")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text()
