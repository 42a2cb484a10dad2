"""The CLI refuses up front what would only fail later, and its own HTTP client survives a hostile answer.

* ``meshop apply``/``import`` of a 417 KB Service: before, written, then refused by the controller
  (its resolved spec is over the assignment limit); now refused before anything is written, naming the
  document and the limit (``model.hashing.MAX_SPEC_BYTES``, the controller's own).
* ``meshop import`` of a document taking another service's route host: before, written (import skipped
  the host-ownership check ``apply`` makes); now refused naming the owner.
* A "Consul" on loopback answering a 4,300-digit status or Content-Length: before, ``int()`` raised
  ValueError and the CLI ended in a traceback; now one clean error line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.cli.main import run
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.hashing import MAX_SPEC_BYTES
from tests.support import acl
from tests.support.consul_server import ConsulServer


def service(name: str, **spec: object) -> dict:
    body = {"image": "busybox:1", "ports": [{"name": "http", "container": 80}], **spec}
    return {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def meshop(addr: str, prefix: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """One command in-process with its role's token (operator for apply and import)."""
    token = acl.token_for(addr, prefix, list(args)) or ""
    capsys.readouterr()
    code = run(["--consul-addr", addr, "--prefix", prefix, "--token", token, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


BIG_ENV = [{"name": f"V{i}", "value": "x" * 2000} for i in range(200)]  # ~417 KB: under Consul's 512 KiB


@pytest.mark.parametrize("verb", ["apply", "import"])
def test_a_document_the_controller_would_refuse_is_refused_up_front(
    consul_server: ConsulServer,
    prefix: str,
    store: KVStore,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    verb: str,
) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps(service("big", env=BIG_ENV)))
    assert 400_000 < big.stat().st_size < 512 * 1024
    code, out, err = meshop(consul_server.addr, prefix, capsys, verb, "-f", str(big))
    assert (code, out) == (1, ""), err
    assert f"{big}: spec" in err and f"at most {MAX_SPEC_BYTES}" in err, err
    assert store.get(keys.desired_service("big")) is None  # nothing written (before: written, then refused)


def test_import_checks_route_host_ownership_as_apply_does(
    consul_server: ConsulServer, prefix: str, store: KVStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    host = "shop.limits.test"
    owner = tmp_path / "zshop.json"
    owner.write_text(json.dumps(service("zshop", route={"host": host, "port": "http"})))
    assert meshop(consul_server.addr, prefix, capsys, "apply", "-f", str(owner))[0] == 0
    thief = tmp_path / "export.yaml"
    thief.write_text(json.dumps(service("aaa", route={"host": host, "port": "http"})))
    for verb in ("apply", "import"):
        code, _, err = meshop(consul_server.addr, prefix, capsys, verb, "-f", str(thief))
        assert code == 1, (verb, err)
        assert "spec.route.host" in err and "belongs to service zshop" in err, (verb, err)
    assert store.get(keys.desired_service("aaa")) is None  # import wrote nothing (before: written)


@pytest.fixture
def hostile_consul(request: pytest.FixtureRequest) -> Iterator[str]:
    """A loopback server answering every request with ``request.param`` (bytes), then closing."""
    answer: bytes = request.param
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # accept() wakes to see ``stop``; closing the socket would not wake it
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


HUGE = b"9" * 4301  # int() refuses more than 4,300 digits


@pytest.mark.parametrize(
    "hostile_consul",
    [
        b"HTTP/1.0 " + HUGE + b" OK\r\n\r\n[]",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + HUGE + b"\r\n\r\n[]",
    ],
    ids=["4300-digit-status", "4300-digit-content-length"],
    indirect=True,
)
def test_the_cli_http_client_turns_a_huge_number_into_a_clean_error(hostile_consul: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meshop", "--consul-addr", hostile_consul, "--prefix", "t", "export"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CONSUL_HTTP_TOKEN": "t"},
    )
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr, done.stderr
    expected = f"Error: Consul at http://{hostile_consul} failed listing t/desired/: not an HTTP answer\n"
    assert (done.returncode, done.stderr) == (2, expected)  # ConsulError's exit code


HUGE_INDEX = b"HTTP/1.0 200 OK\r\nX-Consul-Index: " + HUGE + b"\r\nContent-Length: 2\r\n\r\n[]"


@pytest.mark.parametrize("hostile_consul", [HUGE_INDEX], ids=["4300-digit-index"], indirect=True)
@pytest.mark.parametrize("command", [["get", "services"], ["events"], ["describe", "service", "web"]])
def test_a_huge_consul_index_is_no_internal_error(hostile_consul: str, command: list[str]) -> None:
    """The commands that read through py-consul (the daemons' client) took ``int()`` of the index header:
    ``get services`` ended in "Internal error: ValueError" (exit 70), and so did the dashboard's start."""
    done = subprocess.run(
        [sys.executable, "-m", "meshop", "--consul-addr", hostile_consul, "--prefix", "t", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CONSUL_HTTP_TOKEN": "t"},
    )
    assert "Internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-300:]
    assert done.returncode in (0, 1, 2), (done.returncode, done.stderr[-300:])
