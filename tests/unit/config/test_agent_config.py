"""``AgentConfig``: every field's refusal names the field; the file, the flags given and the defaults merge
in that order; the object builds the daemon's ``AgentSettings`` / ``DaemonOptions`` as the flags did."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.agent.reconciler import AgentSettings
from meshop.config.agent import FIELDS, AgentConfig
from meshop.consul.config import ConsulConfig
from meshop.errors import ConfigError
from meshop.model.policy import Policy

BASE = {"node": "n1", "advertise_addr": "100.64.0.7"}

# (id, given, the field named, words of the reason)
REFUSED = [
    ("node-label", {"node": "Bad_Name"}, "node", "RFC 1123"),
    ("node-type", {"node": 7}, "node", "expected text"),
    ("advertise-empty", {"advertise_addr": " "}, "advertise_addr", "must not be empty"),
    ("publish-type", {"publish_addr": ["x"]}, "publish_addr", "expected text"),
    ("labels-pair", {"labels": "zone"}, "labels", "not key=value"),
    ("labels-number", {"labels": {"zone": 1}}, "labels", "must be text"),
    ("docker-host", {"docker_host": 1}, "docker_host", "expected text"),
    ("state-dir", {"state_dir": ""}, "state_dir", "path"),
    ("lease-dir", {"lease_dir": 5}, "lease_dir", "expected text"),
    ("metrics-addr", {"metrics_addr": None}, "metrics_addr", "expected text"),
    ("resync-low", {"resync": 0}, "resync", "below 0.1"),
    ("resync-text", {"resync": "30"}, "resync", "a number"),
    ("usage-interval-negative", {"usage_interval": -1}, "usage_interval", "below 0"),
    ("drain-negative", {"drain": -1}, "drain", "below 0"),
    ("stop-grace-bool", {"stop_grace": True}, "stop_grace", "a number"),
    ("privileged", {"allow_privileged": "yes"}, "allow_privileged", "true or false"),
    ("host-network", {"allow_host_network": 1}, "allow_host_network", "true or false"),
    ("bind-mount-relative", {"allow_bind_mount": ["srv"]}, "allow_bind_mount", "absolute path"),
    ("bind-mount-root", {"allow_bind_mount": ["/tmp/.."]}, "allow_bind_mount", "whole host"),
    ("bind-mount-text", {"allow_bind_mount": "/srv"}, "allow_bind_mount", "a list"),
    ("caddy-dir", {"caddy_dir": 3}, "caddy_dir", "expected text"),
    ("caddy-admin", {"caddy_admin": 3}, "caddy_admin", "expected text"),
    ("caddy-config", {"caddy_config": ""}, "caddy_config", "path"),
    ("caddy-snippets", {"caddy_snippets": []}, "caddy_snippets", "expected text"),
    ("caddy-bin", {"caddy_bin": None}, "caddy_bin", "expected text"),
    ("ingress-port-range", {"ingress_port": 70000}, "ingress_port", "not in 1..65535"),
    ("ingress-port-float", {"ingress_port": 80.5}, "ingress_port", "an integer"),
    ("ingress-port-alone", {"ingress_port": 8088}, "ingress_port", "needs --caddy-dir"),
    ("ingress-port-missing", {"caddy_dir": "/var/lib/c"}, "ingress_port", "required with --caddy-dir"),
    ("https-port-range", {"ingress_https_port": 0}, "ingress_https_port", "not in 1..65535"),
    ("https-port-alone", {"ingress_https_port": 8443}, "ingress_https_port", "needs --caddy-dir"),
    (
        "https-port-same",
        {"caddy_dir": "/c", "ingress_port": 8088, "ingress_https_port": 8088},
        "ingress_https_port",
        "must differ",
    ),
    ("ingress-bind", {"ingress_bind": ["localhost"]}, "ingress_bind", "not an IP address"),
    ("trusted-proxy", {"ingress_trusted_proxy": ["private_ranges"]}, "ingress_trusted_proxy", "not a CIDR"),
    ("upstream-dns", {"caddy_upstream_dns": 53}, "caddy_upstream_dns", "expected text"),
    ("log-format", {"log_format": "xml"}, "log_format", "not one of text, json"),
    ("log-level", {"log_level": "loud"}, "log_level", "not one of"),
]


def test_every_field_has_a_refusal_in_the_table() -> None:
    assert {field for _, _, field, _ in REFUSED} == set(FIELDS)


@pytest.mark.parametrize(("given", "field", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_refused_flag_names_its_field(given: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        AgentConfig.load({**BASE, **given})
    assert (refused.value.field, refused.value.source) == (field, "")
    assert reason in refused.value.reason


@pytest.mark.parametrize(("given", "field", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_refused_file_value_names_its_field_and_the_file(
    given: dict[str, object], field: str, reason: str, tmp_path: Path
) -> None:
    import yaml

    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({**BASE, **given}))
    with pytest.raises(ConfigError) as refused:
        AgentConfig.load({}, path)
    where = str(path) if field in given else ""  # a field given nowhere is named as its flag
    assert (refused.value.field, refused.value.source) == (field, where)
    assert reason in refused.value.reason
    assert str(refused.value).startswith(f"{where}: {field}: " if where else f"{field}: ")


@pytest.mark.parametrize("missing", ["node", "advertise_addr"])
def test_node_and_advertise_address_are_required(missing: str) -> None:
    with pytest.raises(ConfigError) as refused:
        AgentConfig.load({k: v for k, v in BASE.items() if k != missing})
    assert refused.value.field == missing and refused.value.missing


def test_an_unknown_key_in_the_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("node: n1\nadvertise_addr: 100.64.0.7\nstate-dir: /srv\n")
    with pytest.raises(ConfigError, match="state-dir: unknown key") as refused:
        AgentConfig.load({}, path)
    assert refused.value.source == str(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("node: [\n", r"not valid YAML \(line 2"), ("- node\n", "must hold a mapping"), (b"\xff", "cannot read")],
    ids=["syntax", "a-list", "not-utf8"],
)
def test_a_file_that_is_not_a_mapping_is_refused(text: str | bytes, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=reason) as refused:
        AgentConfig.load(BASE, path)
    assert refused.value.field == "config"
    with pytest.raises(ConfigError, match=r"cannot read .*No such file"):
        AgentConfig.load(BASE, tmp_path / "missing.yaml")


def test_defaults_then_the_file_then_the_flags_given(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "node: from-file\nadvertise_addr: 100.64.0.7\nlabels: {zone: fra1}\nresync: 5\n"
        "allow_bind_mount: [/srv/meshop]\nlog_format: json\n"
    )
    config = AgentConfig.load({"node": "from-flag", "log_format": "text"}, path)
    assert config.node == "from-flag" and config.log_format == "text"  # the flags given win
    assert config.labels == {"zone": "fra1"} and config.resync == 5.0 and config.allow_bind_mount == ("/srv/meshop",)
    assert config.drain == 1.0 and config.metrics_addr == "127.0.0.1:9464"  # neither: the defaults
    assert config == AgentConfig.load(
        {**BASE, "node": "from-flag", "labels": "zone=fra1", "resync": 5} | {"allow_bind_mount": ("/srv/meshop",)}
    )


def test_an_empty_file_holds_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("# nothing yet\n")
    assert AgentConfig.load(BASE, path) == AgentConfig.load(BASE)


def test_it_builds_the_daemon_settings_the_flags_built() -> None:
    config = AgentConfig.load(
        {**BASE, "publish_addr": " 0.0.0.0 ", "labels": "zone=a, disk=ssd", "allow_privileged": True}
        | {"allow_bind_mount": ["/srv"], "drain": 2, "stop_grace": 3}
    )
    assert config.settings() == AgentSettings(
        node="n1",
        advertise_addr="100.64.0.7",
        publish_addr="0.0.0.0",
        labels={"zone": "a", "disk": "ssd"},
        policy=Policy(allow_bind_mounts=True, allow_privileged=True, allow_host_network=False),
        bind_mounts=("/srv",),
        drain=2.0,
        stop_grace=3.0,
    )
    assert config.caddy(config.settings()) is None


def test_it_builds_the_daemon_options(tmp_path: Path) -> None:
    consul = ConsulConfig.from_env({}, addr="127.0.0.1:8500")
    given = {**BASE, "caddy_dir": tmp_path / "c", "ingress_port": 8088, "ingress_bind": ["100.64.0.7"]}
    options = AgentConfig.load(given | {"docker_host": "", "state_dir": tmp_path / "s", "resync": 7}).daemon_options(
        consul
    )
    assert options.settings == AgentConfig.load(given).settings()
    assert options.caddy == CaddyOptions(ingress_port=8088, ingress_bind=("100.64.0.7",), directory=tmp_path / "c")
    assert (options.consul, options.docker_host, options.state_dir, options.resync) == (
        consul,
        None,
        tmp_path / "s",
        7.0,
    )
    assert options.metrics_addr == "127.0.0.1:9464"


def test_the_dataclass_defaults_are_the_fields_defaults() -> None:
    """One default per key: ``AgentConfig(...)`` built directly (tests) agrees with ``load``."""
    assert AgentConfig.load(BASE) == AgentConfig(**BASE)  # type: ignore[arg-type]
