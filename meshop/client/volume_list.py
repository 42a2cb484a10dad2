"""``meshop volume ls``'s rows read from Consul: desired services, their placement, backups and the
volumes kept aside. Apart from ``client.volumes`` because it builds a cluster ``Snapshot``, and
``client.cluster`` reads backups through ``client.volumes``."""

from __future__ import annotations

from meshop.client.cluster import Parsers, Snapshot
from meshop.client.volumes import VolumeRow, kept_entries, volume_rows
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.service import ServiceSpec


def read_volume_rows(store: KVStore) -> list[VolumeRow]:
    """``meshop volume ls``: desired services, their status placement, backups and kept copies."""
    listings = [store.list(p) for p in (keys.DESIRED_SERVICES, keys.STATUS_SERVICES, keys.BACKUPS)]
    snapshot = Snapshot.build(listings, (), None, 0.0, Parsers(store.config.prefix))
    specs = {
        name: ServiceSpec.from_dict(dict(p.desired.spec))
        for name, p in snapshot.services.items()
        if p.desired is not None and p.desired.valid
    }
    placement = {name: list(s.placement) for name, s in snapshot.statuses.items()}
    kept = kept_entries(store.list(keys.KEPT_VOLUMES).entries)
    return volume_rows(specs, placement, snapshot.backups, kept)
