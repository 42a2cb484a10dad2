"""Stale stateful volumes kept aside: recorded under ``volumes/kept/<node>/``, never deleted by meshop.

A stateful volume of this node whose service is no longer assigned here (it moved after this node was
lost, or the user moved it) is the old copy: it is never mounted again by meshop (its service's lock
is another node's) nor deleted (Docker volumes cannot be renamed, so it keeps its name). Its record —
service, volume, the Docker volume, when it was first seen kept — lets ``meshop volume ls`` list it
until the user removes it (``docker volume rm``, then the record goes on the next pass).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Set
from typing import Protocol

from meshop.agent.engine.runtime import VolumeInfo
from meshop.agent.planning import labels as L
from meshop.errors import ConsulError

log = logging.getLogger(__name__)


class KeptStore(Protocol):
    """``cluster.volume_locks.VolumeLocks``."""

    def keep_aside(self, docker_volume: str, record: dict[str, object], /) -> None: ...

    def forget_kept(self, docker_volume: str, /) -> None: ...


class KeptVolumes:
    def __init__(self, node: str, store: KeptStore, wall: Callable[[], float]) -> None:
        self.node, self.store, self.wall = node, store, wall
        self.recorded: set[str] = set()

    def follow(self, volumes: Sequence[VolumeInfo], assigned: Set[str]) -> None:
        """Record every stateful volume whose service is not assigned here; forget removed ones."""
        present = set()
        for volume in volumes:
            labels = volume.labels
            if labels.get(L.STATEFUL) != "true" or labels.get(L.NODE) != self.node:
                continue
            present.add(volume.name)
            service = labels.get(L.SERVICE, "")
            if service in assigned or volume.name in self.recorded:
                continue
            record: dict[str, object] = {
                "node": self.node,
                "service": service,
                "volume": labels.get(L.VOLUME, ""),
                "dockerVolume": volume.name,
                "keptSince": self.wall(),
                "reason": "its service is no longer assigned to this node: an old copy, never started again",
            }
            try:
                self.store.keep_aside(volume.name, record)
            except ConsulError as exc:
                log.warning("recording kept volume %s failed: %s", volume.name, exc)
                continue
            self.recorded.add(volume.name)
            log.info("kept stateful volume %s aside (service %s is not assigned here)", volume.name, service)
        for name in sorted(self.recorded - present):
            try:
                self.store.forget_kept(name)
            except ConsulError as exc:
                log.warning("forgetting kept volume %s failed: %s", name, exc)
                continue
            self.recorded.discard(name)
