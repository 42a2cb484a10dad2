"""``meshop agent run`` / ``gateway run`` with ``--config``: a bad file is one clean usage error (exit 64, no
traceback); the flags the user typed override the file, the flags' defaults do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.cli import main
from meshop.cli.commands import agent as agent_cmd
from meshop.cli.commands import gateway as gateway_cmd
from meshop.config.agent import AgentConfig
from meshop.config.gateway import GatewayConfig

GOOD = "node: n1\nadvertise_addr: 100.64.0.7\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "nodee: n2\n", "{path}: nodee: unknown key (see docs/config.md for the keys)"),
        (GOOD + "resync: fast\n", "{path}: resync: expected a number, not 'fast'"),
        (GOOD + "allow_bind_mount: [/]\n", "{path}: allow_bind_mount: '/' is the whole host; name a folder"),
        ("node: [\n", "{path} is not valid YAML (line 2, column 1)"),
        ("advertise_addr: 100.64.0.7\n", "Missing option '--node'. Give it, or node: in the --config file."),
    ],
    ids=["unknown-key", "bad-value", "bad-folder", "not-yaml", "no-node"],
)
def test_a_bad_agent_config_file_is_a_clean_usage_error(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    assert main.run(["agent", "run", "--config", str(path)]) == 64
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].endswith(message.format(path=path)), err


def test_a_missing_config_file_is_a_clean_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["gateway", "run", "--config", str(tmp_path / "none.yaml")]) == 64
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Invalid value for --config: cannot read" in err


class Started(Exception):
    """The command got as far as building the daemon."""


def test_flags_typed_override_the_file_and_defaults_do_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD + "metrics_addr: 100.64.0.7:9464\nlog_level: debug\nlabels: {zone: fra1}\n")
    seen: list[AgentConfig] = []

    def record(self: AgentConfig, consul: object) -> None:
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(AgentConfig, "daemon_options", record)
    monkeypatch.setattr(agent_cmd, "setup_logging", lambda *_: None)
    monkeypatch.setenv("MESHOP_NODE", "from-env")
    assert main.run(["agent", "run", "--config", str(path), "--log-level", "warning"]) == 0
    (config,) = seen
    assert (config.node, config.log_level) == ("from-env", "warning")  # typed (or its env variable): wins
    assert (config.metrics_addr, config.labels) == ("100.64.0.7:9464", {"zone": "fra1"})  # default flags: not


def test_the_gateway_reads_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"caddy_admin: 127.0.0.1:2019\ntls: acme\nbind: [0.0.0.0]\ncaddy_dir: {tmp_path}\n")
    assert main.run(["gateway", "run", "--config", str(path)]) == 64  # both Caddy keys: refused
    path.write_text("caddy_admin: 127.0.0.1:2019\ntls: acme\nbind: [0.0.0.0]\nid: g1\n")
    seen: list[GatewayConfig] = []

    def record(self: GatewayConfig, admin: str) -> None:
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(GatewayConfig, "settings", record)
    monkeypatch.setattr(gateway_cmd, "setup_logging", lambda *_: None)
    assert main.run(["gateway", "run", "--config", str(path), "--tls", "off"]) == 0
    assert (seen[0].tls, seen[0].bind, seen[0].id, seen[0].https_port) == ("off", ("0.0.0.0",), "g1", 443)
