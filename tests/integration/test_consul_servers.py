"""From one Consul server to three on a running cluster, with the configs ``meshop init``, ``meshop node
add`` and ``meshop node add --server`` write: a client node made a server by a re-run with ``--server``,
and a new host added as one (docs/install.md, "From one server to three"). Real Consul 1.8.7 processes on
loopback, each with its own ports and data folder, gossip encrypted, ACLs default deny.

What must hold: the joining servers never found a cluster of their own (the founder's KV is theirs, every
key), autopilot makes them voters, the founder's host can die and a new leader serves and takes writes,
the founder boots with its unchanged config (``bootstrap_expect`` 1 over its data) and rejoins the same
cluster with what was written while it was off, and with two of three off ``meshop status`` says "no
quorum" (exit 2, no traceback), then resumes on its own when a server is back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from meshop.bootstrap import render
from meshop.client.bootstrap import new_gossip_key
from tests.support.procs import Process, find_binary, free_port, wait_until

pytestmark = pytest.mark.slow
KEYS = 300


class Server:
    """One Consul process from a rendered meshop config; ports and data folder moved for loopback."""

    def __init__(
        self, tmp: Path, name: str, gossip_key: str, join: str = "", agent_token: str = "", server: bool = True
    ) -> None:
        self.name, self.tmp = name, tmp
        self.ports = {"http": free_port(), "serf_lan": free_port(), "serf_wan": free_port(), "server": free_port()}
        self.inputs = {"gossip_key": gossip_key, "join": join, "agent_token": agent_token}
        self.process: Process | None = None
        self.starts = 0
        self.render(server)

    def render(self, server: bool) -> None:
        """Write the config ``init`` / ``node add [--server]`` would (a re-run with --server rewrites it)."""
        tmp, name = self.tmp, self.name
        config = json.loads(
            render.consul_config(node=name, address="127.0.0.1", datacenter="dc1", server=server, **self.inputs)
        )
        config["data_dir"] = str(tmp / name / "data")
        config["ports"] |= self.ports
        config["client_addr"] = "127.0.0.1"
        config["log_level"] = "warn"
        self.config = config
        self.path = tmp / name / "consul.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(config))

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    @property
    def raft(self) -> str:
        return f"127.0.0.1:{self.ports['server']}"

    @property
    def serf(self) -> str:
        return f"127.0.0.1:{self.ports['serf_lan']}"

    def start(self) -> Server:
        self.starts += 1
        args = [find_binary("consul", "MESHOP_CONSUL_BIN"), "agent", f"-config-file={self.path}"]
        self.process = Process(args, self.tmp / self.name / f"consul-{self.starts}.log").start()
        return self

    def kill(self) -> None:  # power off: no leave, no goodbye
        if self.process:
            self.process.kill()

    def call(self, method: str, path: str, token: str = "", body: bytes | None = None) -> object:
        headers = {"X-Consul-Token": token} if token else {}
        request = urllib.request.Request(f"http://{self.addr}{path}", data=body, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data else None

    def leader(self) -> str:
        try:
            return str(self.call("GET", "/v1/status/leader") or "")
        except OSError:
            return ""


def voters(server: Server, token: str) -> set[str]:
    config = server.call("GET", "/v1/operator/raft/configuration", token)
    assert isinstance(config, dict)
    return {s["Address"] for s in config["Servers"] if s["Voter"]}


def kv(server: Server, token: str) -> dict[str, str]:
    import base64

    entries = server.call("GET", "/v1/kv/meshop/?recurse&consistent", token) or []
    assert isinstance(entries, list)
    return {e["Key"]: base64.b64decode(e["Value"] or "").decode() for e in entries}


def put(server: Server, token: str, key: str, value: str) -> None:
    assert server.call("PUT", f"/v1/kv/meshop/{key}", token, value.encode()) is True


def status(server: Server, token: str) -> subprocess.CompletedProcess[str]:
    env = {"CONSUL_HTTP_ADDR": server.addr, "CONSUL_HTTP_TOKEN": token, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "meshop", "status"], capture_output=True, text=True, env=env, timeout=60
    )


def acl_bootstrap(server: Server) -> str:
    """The management token; "" while the new leader's ACL system is not ready yet (500 for a moment)."""
    try:
        answer = server.call("PUT", "/v1/acl/bootstrap")
    except urllib.error.HTTPError as exc:
        if exc.code == 500:
            return ""
        raise
    assert isinstance(answer, dict)
    return str(answer["SecretID"])


def node_token(server: Server, token: str, node: str) -> str:
    body = json.dumps(
        {"Description": f"meshop consul agent {node}", "NodeIdentities": [{"NodeName": node, "Datacenter": "dc1"}]}
    )
    answer = server.call("PUT", "/v1/acl/token", token, body.encode())
    assert isinstance(answer, dict)
    return str(answer["SecretID"])


def test_one_server_to_three_keeps_the_kv_and_survives_the_founders_host(tmp_path: Path) -> None:
    gossip = new_gossip_key()
    gw = Server(tmp_path, "gw", gossip).start()
    try:
        wait_until(gw.leader, 60, 0.1, "the founder elects itself")
        token = str(wait_until(lambda: acl_bootstrap(gw), 30, 0.1, "ACLs bootstrapped"))  # init's step
        for i in range(KEYS):
            put(gw, token, f"desired/services/s{i:03d}", f"v{i}")
        single = status(gw, token)
        assert "Control plane: a single Consul server (127.0.0.1): losing 127.0.0.1 stops failover" in single.stdout

        join = gw.serf  # node add: retry_join the gateway (here its loopback serf port)
        n1 = Server(tmp_path, "n1", gossip, join, node_token(gw, token, "n1"), server=False).start()
        wait_until(lambda: n1.leader() == gw.raft, 60, 0.1, "n1 (a client, as node add made it) joined")
        put(n1, token, "desired/services/through-client", "kept")
        before = kv(gw, token)
        assert len(before) == KEYS + 1
        # the procedure: node add --server again on the running node n1, and on a new host n2
        n1.kill()
        n1.render(server=True)
        n1.start()
        n2 = Server(tmp_path, "n2", gossip, join, node_token(gw, token, "n2")).start()
        servers = [gw, n1, n2]
        # autopilot promotes each joiner after 10 s of good health (server_stabilization_time)
        wait_until(lambda: voters(gw, token) == {s.raft for s in servers}, 60, 0.2, "three voters")
        assert all(s.leader() == gw.raft for s in servers)  # one cluster: the founder's
        assert all("bootstrap_expect" not in s.config for s in (n1, n2))
        assert kv(n2, token) == before and before["meshop/desired/services/s299"] == "v299"
        assert kv(n1, token) == before
        three = status(n1, token)
        assert three.returncode == 0 and "Control plane" not in three.stdout, three.stdout + three.stderr

        gw.kill()  # the gateway host powers off: the leader with it
        wait_until(lambda: n1.leader() not in ("", gw.raft), 30, 0.1, "a new leader among n1, n2")
        put(n1, token, "desired/services/while-gw-off", "written")
        assert kv(n2, token)["meshop/desired/services/while-gw-off"] == "written"

        gw.start()  # boots with the same config: its data says it is a member, it does not found anew
        wait_until(lambda: gw.leader() not in ("", gw.raft), 60, 0.1, "the founder follows the new leader")
        wait_until(lambda: voters(n1, token) == {s.raft for s in servers}, 60, 0.2, "the founder is a voter again")
        assert kv(gw, token) == {**before, "meshop/desired/services/while-gw-off": "written"}

        n2.kill()
        gw.kill()  # two of three off: no quorum
        wait_until(lambda: n1.leader() == "", 30, 0.1, "n1 sees no leader")
        lost = status(n1, token)
        assert lost.returncode == 2, lost.stdout + lost.stderr
        assert "the control plane has no quorum" in lost.stderr and "Traceback" not in lost.stderr
        n2.start()  # a majority is back: everything resumes without an operator
        wait_until(lambda: n1.leader() != "", 60, 0.1, "a leader again")
        after = kv(n1, token)
        assert after == {**before, "meshop/desired/services/while-gw-off": "written"}
    finally:
        for server in (gw, *(s for s in locals().get("servers", []) if s is not gw)):
            server.kill()


def test_status_endpoints_need_no_token(tmp_path: Path) -> None:
    """``meshop status`` reads the control plane before any KV: a token without rights still sees it."""
    gw = Server(tmp_path, "gw", new_gossip_key()).start()
    try:
        wait_until(gw.leader, 60, 0.1, "leader")
        assert gw.call("GET", "/v1/status/peers") == [gw.raft]
        with pytest.raises(urllib.error.HTTPError):
            gw.call("GET", "/v1/kv/meshop/?recurse")  # default deny: the KV is refused without a token
    finally:
        gw.kill()
