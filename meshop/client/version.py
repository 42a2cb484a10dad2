"""``meshop version``: the package version plus what a bug report needs (commit, Python, key libraries).

The commit is read from git only when meshop runs from a checkout (``pip install -e``); an installed
wheel has none and says so. Nothing here talks to Consul.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from meshop import __version__

LIBRARIES = ("py-consul", "click", "rich", "docker", "PyYAML")


def build_info() -> dict[str, object]:
    return {
        "version": __version__,
        "commit": _commit(),
        "python": platform.python_version(),
        "platform": f"{platform.system().lower()}/{platform.machine()}",
        "libraries": {name: _installed(name) for name in LIBRARIES},
    }


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        head = _git(checkout, "rev-parse", "--short=12", "HEAD")
        dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"
    return f"{head}{' (modified)' if dirty else ''}"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True)
    return done.stdout.strip()
