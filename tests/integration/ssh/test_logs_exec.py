"""``meshop logs`` and ``meshop exec`` for real: replicas found through Consul (agents' observed records and
node records), reached over a real sshd (two node addresses, 127.0.0.1 and 127.0.0.2, one host behind
them), ``docker logs``/``docker exec`` on real containers of the shared engine."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from meshop.model import keys, records
from tests.support import acl
from tests.support.containers import TEST_IMAGE, TEST_LABEL
from tests.support.procs import wait_until

# Each replica prints a numbered line every 0.2 s, the contents of /tmp/msg when there is one, and once a
# line full of terminal escapes (window title, screen clear, colour).
LOOP = (
    "printf '\\033]0;pwned\\007\\033[2J\\033[31mred\\033[0m\\n'; i=0; "
    'while true; do echo "tick $i"; [ -f /tmp/msg ] && cat /tmp/msg; i=$((i+1)); sleep 0.2; done'
)


@pytest.fixture
def replicas(docker_client, store):
    """web replica 0 on n1 (127.0.0.1) and on n2 (127.0.0.2), as their agents would report them."""
    started = []
    try:
        for node, address in (("n1", "127.0.0.1"), ("n2", "127.0.0.2")):
            container = docker_client.containers.run(
                TEST_IMAGE,
                ["/bin/sh", "-c", LOOP],
                name=f"t-logs-{node}-{secrets.token_hex(3)}",
                detach=True,
                labels={TEST_LABEL: "true"},
            )
            started.append(container)
            state = records.ContainerState(
                id=container.id,
                name=container.name,
                replica=0,
                image=TEST_IMAGE,
                state="running",
                health="none",
                spec_hash="h",
            )
            observed = records.Observed("web", node, "h", 1, 1, (state,))
            store.put(keys.observed(node, "web"), records.dumps(observed))
            store.put(keys.node(node), records.dumps(records.NodeRecord(name=node, address=address)))
            store.put(keys.inventory_node(node), json.dumps({"addresses": [address]}))  # as `node add` does
        yield {c.name.split("-")[2]: c for c in started}
    finally:
        for container in started:
            container.remove(force=True)


@pytest.fixture
def cli(consul_server, prefix, sshd, tmp_path):
    """``cli(*args, **popen_kw)``: a real ``python -m meshop`` with the read-only token and the sshd's keys
    in meshop's known_hosts."""
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line("127.0.0.1") + sshd.known_hosts_line("127.0.0.2"))

    def command(*args: str) -> tuple[list[str], dict[str, str]]:
        argv = [
            sys.executable,
            "-m",
            "meshop",
            "--consul-addr",
            consul_server.addr,
            "--prefix",
            prefix,
            *args[:1],
            "--ssh-port",
            str(sshd.port),
            "-i",
            str(sshd.client_key),
            "--local-cluster",
            *args[1:],
        ]
        token = acl.token_for(consul_server.addr, prefix, list(args)) or ""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CONSUL_HTTP_TOKEN": token,
            "MESHOP_KNOWN_HOSTS": str(known),
            "PYTHONUNBUFFERED": "1",
        }
        return argv, env

    return command


def test_logs_follow_merges_both_nodes_as_lines_are_written(replicas, cli, docker_client):
    argv, env = cli("logs", "web", "-f")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(raw.decode()) for raw in iter(proc.stdout.readline, b"")])
    reader.start()
    try:
        wait_until(
            lambda: (
                any(ln.startswith("n1/0 | tick") for ln in lines) and any(ln.startswith("n2/0 | tick") for ln in lines)
            ),
            60,
            what="tick lines from both nodes",
        )
        mark = f"written-after-start-{secrets.token_hex(4)}"
        for node, container in replicas.items():
            container.exec_run(["/bin/sh", "-c", f"echo {mark}-{node} > /tmp/msg"])
        wait_until(
            lambda: f"n1/0 | {mark}-n1\n" in lines and f"n2/0 | {mark}-n2\n" in lines,
            60,
            what="lines written after logs -f started",
        )
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
    text = "".join(lines)
    assert "\x1b" not in text and "\x07" not in text  # the container's escapes never reach the terminal
    assert "n1/0 | red\n" in lines


def test_logs_without_follow_sorted_and_filtered_by_node(replicas, cli):
    wait_until(lambda: b"tick 3" in replicas["n2"].logs(), 30, what="a few lines")
    argv, env = cli("logs", "web", "--node", "n2", "-t")
    out = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines and all(ln.startswith("n2/0 | 20") for ln in lines)
    stamps = [ln.split(" ")[2] for ln in lines]
    assert stamps == sorted(stamps)


def test_exec_returns_the_exit_code_and_passes_stdin(replicas, cli):
    argv, env = cli("exec", "web", "--node", "n2", "--", "sh", "-c", "cat; hostname; exit 7")
    out = subprocess.run(argv, env=env, input=b"from stdin\n", capture_output=True, timeout=60)
    assert out.returncode == 7, out.stderr
    assert out.stdout.decode().splitlines() == ["from stdin", replicas["n2"].id[:12]]


def test_unknown_host_key_is_refused_with_its_fingerprint(replicas, cli, sshd, tmp_path):
    argv, env = cli("exec", "web", "--", "sh", "-c", f"touch {tmp_path}/ran")
    Path(env["MESHOP_KNOWN_HOSTS"]).write_text("")
    out = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    assert out.returncode == 3
    assert sshd.fingerprint in out.stderr.decode() and "Traceback" not in out.stderr.decode()
    assert not (tmp_path / "ran").exists()


def test_hostile_records_are_skipped_not_run(replicas, cli, store, tmp_path):
    bad = records.ContainerState(
        id=f"$(touch {tmp_path}/ran)", name="x", replica=1, image="i", state="running", health="none", spec_hash="h"
    )
    store.put(keys.observed("n1", "web"), json.dumps(records.Observed("web", "n1", "h", 1, 1, (bad,)).to_dict()))
    argv, env = cli("exec", "web", "--node", "n1", "--", "true")
    out = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    assert out.returncode == 1 and "is not a Docker id" in out.stderr.decode()
    assert not (tmp_path / "ran").exists()


def test_exec_on_a_terminal_gets_a_tty(replicas, cli):
    import os
    import pty

    argv, env = cli("exec", "web", "--node", "n1", "--", "sh", "-c", "tty; exit 5")
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the command has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        code = proc.wait(60)
        os.close(master)
    assert code == 5, output
    assert b"/dev/pts/" in output  # the command ran on a terminal of its own
