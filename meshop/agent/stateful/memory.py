"""The volume lock sessions this agent holds, on disk: a restarted agent adopts them instead of
killing its copies and waiting out the old sessions' TTL and lock-delay (docs/stateful.md).

Only ids and names are stored (a session id grants nothing without the agent's token). Written
atomically (temporary file, fsync, rename) with mode 0600; an unreadable file is no memory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

Sessions = dict[str, tuple[str, dict[str, str]]]  # service -> (session id, volume -> Docker volume)


class SessionFile:
    def __init__(self, directory: Path, node: str) -> None:
        self.path = directory / f"volume-locks-{node}.json"

    def save(self, sessions: Sessions) -> None:
        data = {s: {"session": sid, "volumes": vols} for s, (sid, vols) in sorted(sessions.items())}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # a restart then waits for the locks instead of adopting them
            log.warning("saving the volume lock sessions to %s failed: %s", self.path, exc)

    def load(self) -> Sessions:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        found: Sessions = {}
        if not isinstance(data, dict):
            return found
        for service, entry in data.items():
            sid = entry.get("session") if isinstance(entry, dict) else None
            vols = entry.get("volumes") if isinstance(entry, dict) else None
            if (
                isinstance(sid, str)
                and isinstance(vols, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in vols.items())
            ):
                found[str(service)] = (sid, dict(vols))
        return found
