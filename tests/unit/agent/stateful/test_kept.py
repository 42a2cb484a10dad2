"""Stale stateful volumes kept aside: recorded while their service is not assigned here, never deleted."""

from __future__ import annotations

from meshop.agent.engine.runtime import VolumeInfo
from meshop.agent.planning import labels as L
from meshop.agent.stateful.kept import KeptVolumes


class KeptStore:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, object]] = {}

    def keep_aside(self, docker_volume: str, record: dict[str, object]) -> None:
        self.records[docker_volume] = record

    def forget_kept(self, docker_volume: str) -> None:
        del self.records[docker_volume]


def test_a_stateful_volume_of_an_unassigned_service_is_recorded_then_forgotten_once_removed() -> None:
    store = KeptStore()
    kept = KeptVolumes("n1", store, lambda: 1.7e9)
    stateful = VolumeInfo("meshop-n1-db-data", L.volume_labels("n1", "db", "data", False, stateful=True))
    plain = VolumeInfo("meshop-n1-web-cache", L.volume_labels("n1", "web", "cache", False))
    kept.follow([stateful, plain], {"db"})
    assert store.records == {}  # assigned here: its own live volume
    kept.follow([stateful, plain], set())
    assert list(store.records) == ["meshop-n1-db-data"]
    assert store.records["meshop-n1-db-data"]["service"] == "db"
    kept.follow([plain], set())
    assert store.records == {}
