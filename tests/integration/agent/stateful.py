"""What the stateful-volume tests share (test_volume_locks, test_restore_to_node, test_agent_backups and the
end-to-end restore): the container sampler that proves "never two copies", the documents, a volume's
folder and checksum, the snapshot a node reported. The second agent is the ``start_other_agent`` fixture
(conftest.py)."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from pathlib import Path
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import BackupRecord, VolumeBackup, loads_json
from tests.integration.agent.helpers import SLEEPER, observed
from tests.support import acl
from tests.support.consul_server import ConsulServer

STATEFUL = {**SLEEPER, "volumes": [{"name": "data", "mountPath": "/data", "stateful": {}}]}
# the first start writes the data; a start on restored data leaves it as it is
LINES_ONCE = "[ -e /data/lines ] || seq 1 5000 > /data/lines; exec sleep 3600"
LINES = "".join(f"{i}\n" for i in range(1, 5001))


def put_password(store: KVStore, prefix: str, service: str) -> str:
    """A fresh repository password in ``service``'s secret ``restic`` (what ``backed_up`` names)."""
    password = "repo-" + secrets.token_hex(8)
    store.client.kv.put(f"{prefix}/secrets/{service}/restic", password)
    return password


def backed_up(repo: Path, *, args: str = LINES_ONCE, **spec: Any) -> dict[str, Any]:
    """A stateful service (volume ``data`` at /data, password in its secret ``restic``, every hour)
    running ``sh -c args``; ``spec`` adds to the spec (``failover``...)."""
    backup = {"repository": str(repo), "passwordSecret": "restic", "every": "1h"}
    volumes = [{"name": "data", "mountPath": "/data", "stateful": {"backup": backup}}]
    return {**SLEEPER, "command": ["/bin/sh"], "args": ["-c", args], "volumes": volumes, **spec}


def document(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec})


class Sampler:
    """Lists the service's running containers on every given node every ``every`` seconds; remembers the
    most seen at once, and on which nodes."""

    def __init__(self, client: Any, service: str, nodes: list[str], every: float = 0.05) -> None:
        self.client, self.service, self.nodes, self.every = client, service, nodes, every
        self.most, self.samples = 0, 0
        self.seen_on: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            running = self.client.containers.list(filters={"label": [f"meshop.service={self.service}"]})
            mine = [c for c in running if c.labels.get("meshop.node") in self.nodes]
            self.most = max(self.most, len(mine))
            self.seen_on |= {c.labels["meshop.node"] for c in mine}
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def running_on(client: Any, node: str, service: str) -> list[Any]:
    return client.containers.list(filters={"label": [f"meshop.node={node}", f"meshop.service={service}"]})


def sync_acl(consul_server: ConsulServer, prefix: str) -> None:
    found = acl.roles(consul_server.addr, prefix)
    if found is not None:
        found.sync()  # the agents' tokens may take their new services' locks now, not at the next resync


def observed_reason(store: KVStore, node: str, service: str) -> str | None:
    record = observed(store, node, service)
    return record.reason if record is not None else None


def volume_folder(client: Any, name: str) -> Path:
    return Path(client.volumes.get(name).attrs["Mountpoint"])


def digest(root: Path) -> dict[str, str]:
    """File name -> SHA-256 of each file directly in ``root``: "the same bytes", checked."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir()) if p.is_file()}


def volume_backup(store: KVStore, node: str, service: str) -> VolumeBackup | None:
    """The first volume of ``backups/<node>/<service>``, as the node reported it."""
    entry = store.get(keys.backups(node, service))
    if entry is None:
        return None
    record = BackupRecord.from_dict(loads_json(entry.value))
    assert record.node == node and record.service == service
    return record.volumes[0] if record.volumes else None


def snapshot_of(store: KVStore, node: str, service: str) -> str:
    """The last snapshot ``node`` reported for ``service``'s first volume; "" before any."""
    found = volume_backup(store, node, service)
    return found.snapshot if found is not None else ""
