"""The volume lock sessions on disk: written 0600, read back strictly (anything odd is no memory)."""

from __future__ import annotations

from pathlib import Path

from meshop.agent.stateful.memory import SessionFile


def test_round_trip_and_mode(tmp_path: Path) -> None:
    memory = SessionFile(tmp_path / "state", "n1")
    memory.save({"db": ("sid-1", {"data": "meshop-n1-db-data"})})
    assert memory.load() == {"db": ("sid-1", {"data": "meshop-n1-db-data"})}
    assert memory.path.stat().st_mode & 0o777 == 0o600


def test_hostile_or_broken_files_are_no_memory(tmp_path: Path) -> None:
    memory = SessionFile(tmp_path, "n1")
    assert memory.load() == {}
    for text in (
        "not json",
        "[1, 2]",
        '{"db": {"session": 5, "volumes": {}}}',
        '{"db": {"session": "x", "volumes": {"a": 1}}}',
    ):
        memory.path.write_text(text)
        assert memory.load() == {}
