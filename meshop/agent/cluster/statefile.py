"""The last good assignments, kept on local disk so a restarted agent with Consul down keeps its node.

Written atomically (temporary file in the same folder, fsync, rename, fsync of the folder) and only
when the content changes; a crash mid-write leaves the previous file intact. Assignments hold Consul
key *names* of secrets, never their values. Next to them: the node's fence token (``fence.py``) and
a token being written (``pending``), so a restarted agent recognises the KV it talked to.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from meshop.model.records import Assignment

log = logging.getLogger(__name__)

FORMAT = 1


class StateFile:
    def __init__(self, directory: Path, node: str) -> None:
        self.directory = Path(directory)
        self.node = node
        self.path = self.directory / f"assignments-{node}.json"
        self._last: bytes | None = None
        self.fence: str | None = None  # the token this agent last confirmed in fences/<node>
        self.pending: str | None = None  # a token it is writing now (accepted too if it stops midway)

    def save(self, assignments: Mapping[str, Assignment]) -> bool:
        """Write if changed; True when written. OSError propagates (the caller logs it)."""
        body = {
            "format": FORMAT,
            "node": self.node,
            "assignments": [assignments[name].to_dict() for name in sorted(assignments)],
            "fence": self.fence,
            "pending": self.pending,
        }
        data = json.dumps(body, sort_keys=True, indent=1).encode("utf-8")
        if data == self._last:
            return False
        if self._last is None and self.path.exists() and self.path.read_bytes() == data:
            self._last = data
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._last = data
        return True

    def load(self) -> dict[str, Assignment] | None:
        """The saved assignments, or None when there is no usable file."""
        try:
            data = self.path.read_bytes()
            body = json.loads(data)
            if body.get("format") != FORMAT or body.get("node") != self.node:
                log.warning("ignoring %s: written for another node or format", self.path)
                return None
            found = {a.service: a for a in (Assignment.from_dict(item) for item in body.get("assignments", []))}
            fence, pending = body.get("fence"), body.get("pending")
            self.fence = fence if isinstance(fence, str) and fence else None
            self.pending = pending if isinstance(pending, str) and pending else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return None
        self._last = data
        return found
