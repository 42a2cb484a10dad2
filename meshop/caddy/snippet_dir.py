"""The files meshop owns in a Caddy import folder, and nothing else there.

A node's Caddyfile imports ``<folder>/*.caddy``; the folder may also hold files an operator put there.
meshop owns exactly the files whose name starts with ``meshop-`` and ends with ``.caddy``: only those are
read, written or removed. Writes are atomic (a hidden temporary file that the import glob does not match,
then a rename), so a Caddy that reloads at any moment never reads half a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

OWNED = re.compile(r"^meshop-[a-z0-9][a-z0-9-]*\.caddy$")


def owned_name(name: str) -> bool:
    return OWNED.fullmatch(name) is not None


class SnippetDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        """meshop's files in the folder by name; one that cannot be read counts as empty (so it differs)."""
        files: dict[str, str] = {}
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return files
        for name in names:
            if not owned_name(name):
                continue
            try:
                files[name] = (self.path / name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                files[name] = ""
        return files

    def replace_all(self, files: Mapping[str, str]) -> bool:
        """Make meshop's files exactly ``files`` (others untouched); True when anything changed on disk."""
        for name in files:
            if not owned_name(name):
                raise ValueError(f"{name!r} is not a file name meshop owns")
        self.path.mkdir(parents=True, exist_ok=True)
        current = self.read()
        changed = False
        for name, text in sorted(files.items()):
            if current.get(name) != text:
                self._write(name, text)
                changed = True
        for name in sorted(set(current) - set(files)):
            (self.path / name).unlink(missing_ok=True)
            changed = True
        return changed

    def _write(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path / name)
