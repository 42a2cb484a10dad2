"""Bootstrap plans: which steps, which files, what --dry-run shows, what is refused. Pure tables."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from meshop.bootstrap import render
from meshop.bootstrap.plan import (
    GatewayInputs,
    NodeInputs,
    PlanInputError,
    Software,
    check_inputs,
    gateway_args,
    plan_gateway,
    plan_node,
)
from meshop.bootstrap.steps import REDACTED, Command, File, Packages, show

REPO = Path(__file__).resolve().parents[3]
KEY = base64.b64encode(b"k" * 32).decode()
CONSUL_TOKEN = "11111111-2222-3333-4444-555555555555"
AGENT_TOKEN = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SOFTWARE = Software(
    "0.1.0", b"\x7fELF consul", (("meshop-0.1.0-py3-none-any.whl", b"w1"), ("click-8.1.7-py3-none-any.whl", b"w2"))
)
NODE = NodeInputs("n1", "100.64.0.11", "100.64.0.1", KEY, CONSUL_TOKEN, AGENT_TOKEN, {"zone": "fra1"})
GATEWAY = GatewayInputs("gw", "100.64.0.1", KEY)


def _files(steps) -> dict[str, File]:
    return {s.path: s for s in steps if isinstance(s, File)}


def test_node_plan_steps_in_order():
    steps = plan_node(NODE, SOFTWARE)
    titles = [s.title for s in steps]
    assert titles[0].startswith("packages docker.io")
    assert titles[1] == "packages caddy python3-venv ca-certificates"
    files = _files(steps)
    assert list(files) == [
        "/usr/local/bin/consul",
        "/opt/meshop/wheels/click-8.1.7-py3-none-any.whl",
        "/opt/meshop/wheels/meshop-0.1.0-py3-none-any.whl",
        "/etc/consul.d/consul.json",
        "/etc/meshop/agent.yaml",
        "/etc/meshop/agent.env",
        "/etc/systemd/system/consul.service",
        "/etc/systemd/system/meshop-fence.service",
        "/etc/systemd/system/meshop-agent.service",
    ]
    start = next(s for s in steps if s.title.startswith("systemd: "))
    assert isinstance(start, Command) and "systemctl" in start.apply
    assert "meshop-fence.service" in start.title and "meshop-fence.service" in start.check  # enabled and running
    assert "/etc/meshop/agent.env" in start.after_change  # a new token restarts the agent
    assert "/etc/meshop/agent.yaml" in start.after_change  # so does a new configuration


def test_node_files_hold_the_inputs_with_private_modes():
    files = _files(plan_node(NODE, SOFTWARE))
    config = json.loads(files["/etc/consul.d/consul.json"].content)
    assert config["encrypt"] == KEY and config["retry_join"] == ["100.64.0.1"]
    assert config["gossip_lan"]["suspicion_mult"] == 3  # quick failure detection on every agent, not only the server
    assert config["acl"]["default_policy"] == "deny" and config["acl"]["tokens"]["agent"] == CONSUL_TOKEN
    assert config["bind_addr"] == "100.64.0.11" and config["client_addr"] == "127.0.0.1"
    assert "server" not in config
    env = files["/etc/meshop/agent.env"].content.decode()
    assert env.splitlines()[1:] == [
        "MESHOP_PREFIX=meshop",
        "CONSUL_HTTP_ADDR=127.0.0.1:8500",
        f"CONSUL_HTTP_TOKEN={AGENT_TOKEN}",
    ]
    assert files["/etc/meshop/agent.env"].mode == files["/etc/consul.d/consul.json"].mode == 0o600
    yaml_file = files["/etc/meshop/agent.yaml"]
    assert yaml_file.mode == 0o644 and yaml_file.secrets == ()  # no token: readable, shown in full by --dry-run
    for secret in (KEY, CONSUL_TOKEN, AGENT_TOKEN):
        assert secret.encode() not in yaml_file.content
    assert files["/usr/local/bin/consul"].mode == 0o755


def test_dry_run_shows_every_file_but_no_secret():
    steps = plan_node(NODE, SOFTWARE)
    text = "\n".join(show(s) for s in steps)
    for secret in (KEY, CONSUL_TOKEN, AGENT_TOKEN):
        assert secret not in text
    assert text.count(REDACTED) >= 3
    assert (
        "| node: n1" in text and "| ExecStart=/usr/local/bin/meshop agent run --config /etc/meshop/agent.yaml" in text
    )
    assert "/usr/local/bin/consul (mode 0755): 11 bytes, sha256 " in text  # binaries by size and digest


def test_without_systemd_nothing_is_started():
    steps = plan_node(replace(NODE, start=False), SOFTWARE)
    assert not any("systemctl" in getattr(s, "apply", "") for s in steps)


def test_gateway_plan_makes_tokens_on_the_gateway():
    steps = plan_gateway(GATEWAY, SOFTWARE)
    config = json.loads(_files(steps)["/etc/consul.d/consul.json"].content)
    assert config["server"] is True and config["bootstrap_expect"] == 1 and config["encrypt"] == KEY
    assert config["gossip_lan"] == {"probe_interval": "500ms", "probe_timeout": "300ms", "suspicion_mult": 3}
    assert config["acl"]["default_policy"] == "deny" and "tokens" not in config["acl"]
    commands = [s for s in steps if isinstance(s, Command)]
    names = " ".join(c.name for c in commands)
    for part in ("ACLs bootstrapped", "controller token", "gateway token", "acl-sync token", "agent token"):
        assert part in names
    env_steps = [c for c in commands if c.name.startswith("/etc/meshop/")]
    assert all("umask 077" in c.apply and "= 600" in c.check for c in env_steps)
    units = [p for p in _files(steps) if p.startswith("/etc/systemd/system/")]
    assert units == [
        "/etc/systemd/system/consul.service",
        "/etc/systemd/system/meshop-controller.service",
        "/etc/systemd/system/meshop-gateway.service",
        "/etc/systemd/system/meshop-acl-sync.service",
    ]
    assert all(not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", show(s)) for s in steps)  # no token in any step


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "N_1"}, "--name"),
        ({"name": "n1\nEvil=1"}, "--name"),
        ({"address": "127.0.0.1"}, "--address"),
        ({"address": "x y"}, "--address"),
        ({"join": ""}, "--join"),
        ({"gossip_key": "not base64!"}, "gossip key"),
        ({"gossip_key": base64.b64encode(b"short").decode()}, "gossip key"),
        ({"agent_token": "t\nMESHOP_NODE=other"}, "agent token"),
        ({"consul_token": ""}, "Consul agent token"),
        ({"labels": {"zone": "a,b=c"}}, "--labels"),
        ({"labels": {"bad key": "v"}}, "--labels"),
        ({"prefix": "a/../b"}, "prefix"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_bad_node_inputs_are_refused_by_name(change, field):
    with pytest.raises(PlanInputError, match=re.escape(field)):
        check_inputs(replace(NODE, **change), SOFTWARE)


@pytest.mark.parametrize(
    ("software", "field"),
    [
        (replace(SOFTWARE, version="1.0; rm -rf /"), "version"),
        (replace(SOFTWARE, wheels=(("click.whl", b""),)), "meshop's own wheel"),
        (replace(SOFTWARE, wheels=(*SOFTWARE.wheels, ("../x.whl", b""))), "wheel '../x.whl'"),
    ],
    ids=["version", "no-meshop-wheel", "wheel-path"],
)
def test_bad_software_is_refused(software, field):
    with pytest.raises(PlanInputError, match=re.escape(field)):
        check_inputs(NODE, software)


def test_gateway_args_cannot_reach_a_shell():
    with pytest.raises(PlanInputError, match="gateway args"):
        check_inputs(replace(GATEWAY, gateway_args="--bind 0.0.0.0 $(id)"), SOFTWARE)


def test_good_inputs_pass_and_local_cluster_allows_loopback():
    check_inputs(NODE, SOFTWARE)
    check_inputs(GATEWAY, SOFTWARE)
    check_inputs(replace(NODE, address="127.0.0.1", join="127.0.0.1"), SOFTWARE, local_cluster=True)


def test_wheel_digest_follows_content():
    assert SOFTWARE.digest != replace(SOFTWARE, wheels=(("meshop-0.1.0-py3-none-any.whl", b"other"),)).digest


@pytest.mark.parametrize(
    "name", ["meshop-agent", "meshop-fence", "meshop-controller", "meshop-gateway", "meshop-acl-sync"]
)
def test_shipped_units_are_the_rendered_ones(name):
    assert (REPO / "agents" / f"{name}.service").read_text() == render.UNITS[f"{name}.service"]


def test_the_written_config_files_are_what_the_daemons_read(tmp_path: Path) -> None:
    """The agent.yaml ``node add`` writes and the gateway.yaml ``init`` writes load into the daemons'
    configuration objects with the inputs (so a key the bootstrap writes is one ``meshop.config`` knows);
    so do the samples shipped in ``agents/``."""
    from meshop.config.agent import AgentConfig
    from meshop.config.gateway import GatewayConfig

    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_bytes(_files(plan_node(NODE, SOFTWARE))["/etc/meshop/agent.yaml"].content)
    agent = AgentConfig.load({}, agent_yaml)
    assert (agent.node, agent.advertise_addr, dict(agent.labels)) == ("n1", "100.64.0.11", {"zone": "fra1"})
    assert (agent.state_dir, agent.metrics_addr, agent.log_format) == (
        Path("/var/lib/meshop/agent"),
        "127.0.0.1:9464",
        "json",
    )
    gateway_yaml = tmp_path / "gateway.yaml"
    gateway_yaml.write_bytes(_files(plan_gateway(GATEWAY, SOFTWARE))["/etc/meshop/gateway.yaml"].content)
    gateway = GatewayConfig.load({}, gateway_yaml)
    assert (gateway.caddy_dir, gateway.metrics_addr, gateway.log_format) == (
        Path("/var/lib/meshop/gateway"),
        "127.0.0.1:9466",
        "json",
    )
    assert AgentConfig.load({}, REPO / "agents" / "meshop-agent.yaml").node == "node1"
    assert GatewayConfig.load({}, REPO / "agents" / "meshop-gateway.yaml").caddy_dir == Path("/var/lib/meshop/gateway")


def test_package_steps_skip_docker_when_an_engine_is_there():
    docker = plan_node(NODE, SOFTWARE)[0]
    assert isinstance(docker, Packages) and docker.check.startswith("{ [ -S /var/run/docker.sock ]; } ||")


def test_env_files_are_written_verbatim_even_with_a_percent_sign(tmp_path: Path) -> None:
    """The env file's lines are printf's argument, not its format: ``%`` in gateway args stays ``%``."""
    inputs = replace(GATEWAY, gateway_args="--bind 0.0.0.0 --label rate=50%s")
    step = next(s for s in plan_gateway(inputs, SOFTWARE) if isinstance(s, Command) and "gateway.env" in s.name)
    target = tmp_path / "gateway.env"
    script = step.apply.replace("/etc/meshop/gateway.env", str(target))
    script = script.replace(script[script.index("t=") + 2 : script.index(" && printf")], "secret-token")
    subprocess.run(["sh", "-c", script], check=True)
    text = target.read_text()
    assert "MESHOP_GATEWAY_ARGS=--bind 0.0.0.0 --label rate=50%s --advertise-addr 100.64.0.1\n" in text
    assert text.endswith("CONSUL_HTTP_TOKEN=secret-token\n")
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def _gateway_env_step(inputs: GatewayInputs, target: Path) -> Command:
    step = next(s for s in plan_gateway(inputs, SOFTWARE) if isinstance(s, Command) and "gateway.env" in s.name)
    return replace(
        step,
        check=step.check.replace("/etc/meshop/gateway.env", str(target)),
        apply=step.apply.replace("/etc/meshop/gateway.env", str(target)).replace(
            step.apply[step.apply.index("t=") + 2 : step.apply.index(" && printf")], "secret-token"
        ),
    )


def test_gateway_registers_its_address_unless_told_otherwise(tmp_path: Path) -> None:
    """Without --advertise-addr `meshop status` said "no gateway" while it served."""
    assert gateway_args(GATEWAY) == "--bind 0.0.0.0 --tls acme --advertise-addr 100.64.0.1"
    own = replace(GATEWAY, gateway_args="--tls internal --advertise-addr 100.64.0.9")
    assert gateway_args(own) == "--tls internal --advertise-addr 100.64.0.9"


def test_env_file_check_follows_every_line_and_a_rewrite_restarts_the_daemons(tmp_path: Path) -> None:
    target = tmp_path / "gateway.env"
    step = _gateway_env_step(GATEWAY, target)
    subprocess.run(["sh", "-c", step.apply], check=True)
    assert subprocess.run(["sh", "-c", step.check]).returncode == 0
    changed = _gateway_env_step(replace(GATEWAY, gateway_args="--bind 0.0.0.0 --tls internal"), target)
    assert subprocess.run(["sh", "-c", changed.check]).returncode != 0  # new args: the file is rewritten
    start = next(s for s in plan_gateway(GATEWAY, SOFTWARE) if s.title.startswith("systemd: meshop-"))
    assert isinstance(start, Command) and step.title in start.after_change


def test_client_agents_cache_acls_briefly_so_a_widened_agent_policy_applies_within_seconds():
    node = json.loads(_files(plan_node(NODE, SOFTWARE))["/etc/consul.d/consul.json"].content)["acl"]
    assert node["token_ttl"] == node["policy_ttl"] == node["role_ttl"] == "5s"
    server = json.loads(_files(plan_gateway(GATEWAY, SOFTWARE))["/etc/consul.d/consul.json"].content)["acl"]
    assert "policy_ttl" not in server  # a server resolves from its own state: nothing cached


CONTROLLER_TOKEN = "cccccccc-1111-2222-3333-444444444444"
MANAGEMENT = "eeeeeeee-1111-2222-3333-444444444444"
SERVER_NODE = replace(NODE, server=True, controller_token=CONTROLLER_TOKEN, management_token=MANAGEMENT)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param(
            GATEWAY,
            {"server": True, "bootstrap_expect": 1, "client_addr": "127.0.0.1 100.64.0.1"},
            id="gateway-founds-the-cluster",
        ),
        pytest.param(
            SERVER_NODE,
            {"server": True, "retry_join": ["100.64.0.1"], "client_addr": "127.0.0.1 100.64.0.11"},
            id="server-node-joins-never-bootstraps",
        ),
        pytest.param(
            NODE, {"retry_join": ["100.64.0.1"], "client_addr": "127.0.0.1"}, id="client-node-joins-loopback-http"
        ),
    ],
)
def test_consul_config_per_role(inputs, expected):
    """One founder (bootstrap_expect 1: ACLs are bootstrapped there before anyone can join), servers that
    join it and never bootstrap (no second cluster), clients; every server with dead-server cleanup."""
    plan = plan_gateway if isinstance(inputs, GatewayInputs) else plan_node
    config = json.loads(_files(plan(inputs, SOFTWARE))["/etc/consul.d/consul.json"].content)
    assert {k: config.get(k) for k in expected} == expected
    server = config.get("server", False)
    assert ("bootstrap_expect" in config) == isinstance(inputs, GatewayInputs)
    assert config.get("autopilot") == ({"cleanup_dead_servers": True} if server else None)
    assert config.get("performance") == ({"raft_multiplier": 1} if server else None)
    assert config["acl"]["default_policy"] == "deny" and config["encrypt"] == KEY
    assert ("token_ttl" in config["acl"]) == (not server)  # a server resolves tokens itself


def test_server_node_runs_a_controller_standby_and_waits_to_be_a_raft_peer():
    steps = plan_node(SERVER_NODE, SOFTWARE)
    files = _files(steps)
    env = files["/etc/meshop/controller.env"]
    assert env.mode == 0o600 and env.secrets == (CONTROLLER_TOKEN,)
    assert f"CONSUL_HTTP_TOKEN={CONTROLLER_TOKEN}\n".encode() in env.content
    assert b"CONSUL_HTTP_ADDR=127.0.0.1:8500\n" in env.content  # its own server: alive while the gateway is not
    assert f"MESHOP_CONTROLLER_ID={SERVER_NODE.name}\n".encode() in env.content  # the node's, not the host name
    assert f"MESHOP_ACL_SYNC_ID={SERVER_NODE.name}\n".encode() in files["/etc/meshop/acl-sync.env"].content
    assert "/etc/systemd/system/meshop-controller.service" in files
    start = next(s for s in steps if s.title.startswith("systemd: "))
    assert "meshop-controller.service" in start.title and "/etc/meshop/controller.env" in start.after_change
    titles = [s.title for s in steps]
    peer = next(i for i, t in enumerate(titles) if "Raft peer" in t)
    assert titles.index(start.title) < peer and "100.64.0.11:8300" in steps[peer].check
    assert CONTROLLER_TOKEN not in "\n".join(show(s) for s in steps)
    plain = {s.title for s in plan_node(NODE, SOFTWARE)}
    assert not any("Raft peer" in t or "controller" in t for t in plain)


def test_server_node_needs_a_controller_token():
    with pytest.raises(PlanInputError, match="controller token"):
        check_inputs(replace(SERVER_NODE, controller_token=""), SOFTWARE)
    with pytest.raises(PlanInputError, match="management token: not a Consul token"):
        check_inputs(replace(SERVER_NODE, management_token="x\nCONSUL_HTTP_ADDR=evil:8500"), SOFTWARE)
    check_inputs(SERVER_NODE, SOFTWARE)


def test_server_node_runs_an_acl_sync_standby_with_the_management_token():
    """Issue 23: with the gateway host off, a replica moved to a node must still get its registration
    rights, so every server host runs `acl sync --watch` (they elect one active syncer)."""
    steps = plan_node(SERVER_NODE, SOFTWARE)
    files = _files(steps)
    env = files["/etc/meshop/acl-sync.env"]
    assert env.mode == 0o600 and env.secrets == (MANAGEMENT,)
    assert f"CONSUL_HTTP_TOKEN={MANAGEMENT}\n".encode() in env.content
    assert b"CONSUL_HTTP_ADDR=127.0.0.1:8500\n" in env.content  # its own server: alive while the gateway is not
    assert b"MESHOP_PREFIX=meshop\n" in env.content
    assert files["/etc/systemd/system/meshop-acl-sync.service"].content == render.ACL_SYNC_UNIT.encode()
    start = next(s for s in steps if s.title.startswith("systemd: "))
    assert "meshop-acl-sync.service" in start.title and "/etc/meshop/acl-sync.env" in start.after_change
    shown = "\n".join(show(s) for s in steps)
    assert MANAGEMENT not in shown and CONTROLLER_TOKEN not in shown
    plain = plan_node(NODE, SOFTWARE)
    assert "/etc/meshop/acl-sync.env" not in _files(plain)
    assert not any("acl-sync" in s.title for s in plain)
