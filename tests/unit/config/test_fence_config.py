"""``FenceConfig``: the fence reads its keys from the agent's file, ignores the agent's others, and names
the field (and the file) of a refused value."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.agent.stateful.leases import DEFAULT_DIR
from meshop.config.fence import FenceConfig
from meshop.errors import ConfigError

AGENT_FILE = """
node: n1
advertise_addr: 100.64.0.7
labels: {zone: fra1}
docker_host: unix:///run/other.sock
lease_dir: /run/meshop/fence-test
log_format: json
"""


def test_reads_its_keys_from_the_agents_file_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT_FILE)
    config = FenceConfig.load({}, path)
    assert config == FenceConfig("n1", "unix:///run/other.sock", Path("/run/meshop/fence-test"), "json", "info")
    assert FenceConfig.load({"node": "n2", "lease_dir": "/x"}, path).node == "n2"
    assert FenceConfig.load({"node": "n2"}).lease_dir == DEFAULT_DIR


@pytest.mark.parametrize(
    ("given", "field"), [({}, "node"), ({"node": "Bad_Name"}, "node"), ({"node": "n1", "lease_dir": ""}, "lease_dir")]
)
def test_a_refused_flag_names_its_field(given: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        FenceConfig.load(given)
    assert refused.value.field == field and refused.value.source == ""


def test_a_refused_file_value_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("node: Not_A_Label\nresync: 3\n")
    with pytest.raises(ConfigError) as refused:
        FenceConfig.load({}, path)
    assert (refused.value.field, refused.value.source) == ("node", str(path))
