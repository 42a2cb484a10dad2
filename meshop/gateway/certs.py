"""Certificate material shared between gateways through Consul KV, so a standby serves valid
certificates before it takes traffic.

What is shared: the files of the gateway Caddy's data folder (``<caddy-dir>/data/caddy/``): the
internal CA (``pki/``), certificates and their keys (``certificates/``) and ACME accounts (``acme/``);
never its locks or instance id. Where: ``<prefix>/secrets/meshop-gateway/certs/<path>``, a folder only
the ``gateway`` role may read or write (the controller, operators and read-only tokens are denied
``secrets/``). Each value is JSON ``{mtime, sha256, data}`` (data base64).

The rule (``plan_sync``, pure):

* at start, before Caddy runs: every file in KV that differs from the local one is written locally
  (KV wins), so a fresh or returning gateway starts with the fleet's CA and certificates;
* while running, after each pass: a local file KV lacks is uploaded with check-and-set "create only";
  a local file that differs and is newer than KV's copy (a renewal) replaces it — except the CA
  (``pki/``): the first gateway's CA wins and is never overwritten, so every gateway issues from one.

Values are written by other gateways: each is checked (path segments, size, base64, sha256) and a
file is written only inside the data folder, atomically, mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshop.consul.store import KVStore
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.names import is_consul_key

log = logging.getLogger(__name__)

FOLDER = "meshop-gateway"  # secrets/meshop-gateway/: Service names meshop-* are reserved
MAX_FILE = 256 * 1024
SKIP_TOP = ("locks",)
SKIP_FILES = ("instance.uuid", "last_clean.json")
CREATE_ONLY = ("pki/",)


@dataclass(frozen=True)
class FileState:
    sha256: str
    mtime: float


@dataclass(frozen=True)
class SyncPlan:
    downloads: tuple[str, ...] = ()
    uploads: tuple[str, ...] = ()  # create only (absent in KV)
    replaces: tuple[str, ...] = ()  # newer locally than in KV


def plan_sync(local: Mapping[str, FileState], remote: Mapping[str, FileState], *, at_start: bool) -> SyncPlan:
    if at_start:
        return SyncPlan(tuple(sorted(p for p, r in remote.items() if p not in local or local[p].sha256 != r.sha256)))
    uploads = tuple(sorted(p for p in local if p not in remote))
    replaces = tuple(
        sorted(
            p
            for p, mine in local.items()
            if p in remote
            and mine.sha256 != remote[p].sha256
            and mine.mtime > remote[p].mtime
            and not p.startswith(CREATE_ONLY)
        )
    )
    return SyncPlan((), uploads, replaces)


def shareable(rel: str) -> bool:
    parts = rel.split("/")
    return is_consul_key(rel) and parts[0] not in SKIP_TOP and parts[-1] not in SKIP_FILES


class CertSync:
    def __init__(self, store: KVStore, data_dir: Path) -> None:
        self.store = store
        self.data_dir = data_dir
        self.folder = f"{keys.SECRETS}{FOLDER}/certs/"
        self._stopping = threading.Event()
        self._thread: DaemonThread | None = None

    def start(self, interval: float = 10.0) -> CertSync:
        """Sync every ``interval`` seconds in a thread (uploads what Caddy issued or renewed)."""

        def run() -> None:
            while not self._stopping.wait(interval):
                safe_sync(self)

        self._thread = DaemonThread("gateway-certs", run, stopping=self._stopping).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.stop(10)
            safe_sync(self)  # what Caddy issued since the last round

    def local(self) -> dict[str, tuple[FileState, bytes]]:
        files: dict[str, tuple[FileState, bytes]] = {}
        if not self.data_dir.is_dir():
            return files
        for path in self.data_dir.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(self.data_dir).as_posix()
            if not shareable(rel) or path.stat().st_size > MAX_FILE:
                continue
            data = path.read_bytes()
            files[rel] = (FileState(hashlib.sha256(data).hexdigest(), path.stat().st_mtime), data)
        return files

    def remote(self) -> dict[str, tuple[FileState, bytes, int]]:
        files: dict[str, tuple[FileState, bytes, int]] = {}
        for entry in self.store.list(self.folder).entries:
            rel = entry.key[len(self.folder) :]
            try:
                body = json.loads(entry.value)
                data = base64.b64decode(str(body["data"]), validate=True)
                state = FileState(str(body["sha256"]), float(body["mtime"]))
            except (ValueError, KeyError, TypeError, binascii.Error):
                log.warning("certificate store: unreadable entry %s ignored", rel[:100])
                continue
            if not shareable(rel) or len(data) > MAX_FILE or hashlib.sha256(data).hexdigest() != state.sha256:
                log.warning("certificate store: entry %s refused (name, size or checksum)", rel[:100])
                continue
            files[rel] = (state, data, entry.modify_index)
        return files

    def sync(self, *, at_start: bool = False) -> SyncPlan:
        """One round (see the module docstring); Consul errors propagate, a lost create race does not."""
        local = self.local()
        remote = self.remote()
        plan = plan_sync({p: s for p, (s, _) in local.items()}, {p: r[0] for p, r in remote.items()}, at_start=at_start)
        for rel in plan.downloads:
            self._write(rel, remote[rel][1], remote[rel][0].mtime)
        for rel in plan.uploads + plan.replaces:
            state, data = local[rel]
            body = json.dumps({"mtime": state.mtime, "sha256": state.sha256, "data": base64.b64encode(data).decode()})
            cas = 0 if rel in plan.uploads else remote[rel][2]
            self.store.cas(self.folder + rel, body, cas)  # False: another gateway wrote first; its copy wins
        if plan.downloads or plan.uploads or plan.replaces:
            log.info(
                "certificate store: %d file(s) in, %d new and %d renewed out",
                len(plan.downloads),
                len(plan.uploads),
                len(plan.replaces),
            )
        return plan

    def _write(self, rel: str, data: bytes, mtime: float) -> None:
        target = (self.data_dir / rel).resolve()
        root = self.data_dir.resolve()
        if root not in target.parents:
            raise ValueError(f"certificate store: {rel} lies outside the data folder")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(f".{target.name}.meshop-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, target)


def safe_sync(certs: CertSync, *, at_start: bool = False) -> None:
    """``sync`` for the gateway's loop: a failure is logged, never fatal (serving matters more)."""
    try:
        certs.sync(at_start=at_start)
    except (ConsulError, OSError, ValueError) as exc:
        log.warning("certificate store: sync failed (retrying next pass): %s", exc)
