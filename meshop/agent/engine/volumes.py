"""Volumes the agent created with ``deleteWithService``: removed once their service is gone.

A volume goes only when its service is no longer assigned here *and* none of its containers is left
(a removal still in flight keeps it); every other volume survives its service (safety rule 3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Set
from typing import Protocol

from meshop.agent.engine.runtime import VolumeInfo
from meshop.agent.planning import labels as L
from meshop.agent.planning.plan import Container
from meshop.errors import DriverError

log = logging.getLogger(__name__)


class VolumeEngine(Protocol):
    def list_volumes(self) -> list[VolumeInfo]: ...

    def remove_volume(self, name: str, /) -> bool: ...


def remove_released(engine: VolumeEngine, assigned: Set[str], containers: Iterable[Container]) -> None:
    """Remove volumes marked deleteWithService whose service is unassigned and whose containers are gone."""
    in_use = {c.service for c in containers}
    try:
        volumes = engine.list_volumes()
    except DriverError as exc:
        log.warning("listing volumes failed: %s", exc)
        return
    for volume in volumes:
        service = volume.labels.get(L.SERVICE, "")
        if volume.labels.get(L.STATEFUL) == "true":
            continue  # a stateful volume is never deleted by meshop (docs/stateful.md)
        if volume.labels.get(L.DELETE_WITH_SERVICE) != "true" or service in assigned or service in in_use:
            continue
        try:
            if engine.remove_volume(volume.name):
                log.info("removed volume %s of removed service %s", volume.name, service)
        except DriverError as exc:
            log.warning("removing volume %s failed: %s", volume.name, exc)
