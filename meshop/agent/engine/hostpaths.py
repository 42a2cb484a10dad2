"""Bind mounts only below the host folders the agent was started with (``--allow-bind-mount PATH``), and
only from paths no one but root can change.

A spec's ``hostPath`` is resolved on this host (``os.path.realpath``: every symlink and ``..`` followed)
and allowed only when the result is one of the allowed folders (themselves resolved) or below one; the
resolved path, not the spec's, is what Docker mounts. So ``/srv/app/../../etc`` or a symlink
``/srv/app/link -> /`` planted by a container that can write ``/srv/app`` never reaches outside.

Docker resolves the path again at every start of the container (create, a restart by its restart policy
or the daemon, a reboot), long after this check: a writer who can rename an entry on the way could swap
a folder for a symlink in between and the container would get whatever it points at. So the rule is not
about timing but about who can change the names: the resolved path is walked from ``/`` one component at
a time (``openat`` with ``O_PATH|O_NOFOLLOW``: what is checked is what is there, and a component that
turned into a symlink since ``realpath`` is refused), and every folder holding a name on the way must
belong to root (or the agent's user) and be writable by no one else, unless it is sticky (``/tmp``) and
the entry belongs to root. Containers run as root on the host's files, so a path is also refused when it
lies below a folder a container of this node mounts writable (``resolve_all``): that container could
rename the entries below its mount. Then only root on the host can change what Docker mounts.

Left open (documented): a Docker engine on another host than the agent (``--docker-host``), where this
host's filesystem says nothing about the engine's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

from meshop.model import ServiceSpec

Resolved = tuple[dict[str, str], str | None]  # (hostPath -> resolved path, None) or ({}, why not)


def within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or below it (both already resolved, absolute)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def _changeable(folder: os.stat_result, entry: os.stat_result, trusted: set[int]) -> str | None:
    """Why someone other than root could rename or replace ``entry`` in ``folder``, or None."""
    if folder.st_uid not in trusted:
        return f"belongs to uid {folder.st_uid}"
    if folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if folder.st_mode & stat.S_ISVTX and entry.st_uid in trusted:
            return None  # sticky: only the entry's owner (root) may rename it
        return "is writable by users other than root"
    return None


def unchangeable(real: str) -> str | None:
    """None when no one but root can change which file ``real`` (absolute, resolved) names, else why."""
    trusted = {0, os.geteuid()}
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags | os.O_DIRECTORY)
    here = "/"
    try:
        for part in [p for p in real.split("/") if p]:
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                return None  # nothing to swap yet; Docker refuses a missing source, the next pass checks again
            folder, entry = os.fstat(fd), os.fstat(child)
            os.close(fd)
            fd = child
            if stat.S_ISLNK(entry.st_mode):
                return f"{os.path.join(here, part)} changed into a symlink while it was checked"
            why = _changeable(folder, entry, trusted)
            if why is not None:
                return f"folder {here} {why}: its entry {part} could be swapped for a symlink before Docker mounts it"
            here = os.path.join(here, part)
        return None
    finally:
        os.close(fd)


def resolve_binds(spec: ServiceSpec, allowed: Iterable[str]) -> Resolved:
    """``(hostPath -> resolved path, None)`` when every bind mount of ``spec`` is allowed, else
    ``({}, why not)`` naming the first refused path and what it resolved to."""
    roots = [os.path.realpath(folder) for folder in allowed]
    resolved: dict[str, str] = {}
    for volume in spec.volumes:
        if not volume.host_path:
            continue
        real = os.path.realpath(volume.host_path)
        if not roots:
            return {}, "this node's agent does not allow bind mounts (--allow-bind-mount PATH)"
        shown = f"{volume.host_path} (resolves to {real})" if real != volume.host_path else volume.host_path
        if not any(within(real, root) for root in roots):
            return {}, f"host path {shown} is outside the agent's --allow-bind-mount folders: {', '.join(roots)}"
        why = unchangeable(real)
        if why is not None:
            return {}, f"host path {shown}: {why}"
        resolved[volume.host_path] = real
    return resolved, None


def resolve_all(specs: Mapping[str, ServiceSpec], allowed: Iterable[str]) -> dict[str, Resolved]:
    """``resolve_binds`` for every service of the node, and a path below another writable bind mount of
    the node (any service's, its own included) refused: that container could rename what is below it."""
    roots = list(allowed)
    results = {name: resolve_binds(spec, roots) for name, spec in specs.items()}
    writable = sorted(
        (os.path.realpath(volume.host_path), name)
        for name, spec in specs.items()
        for volume in spec.volumes
        if volume.host_path and not volume.read_only
    )
    for name, (resolved, refusal) in results.items():
        if refusal is not None:
            continue
        for host_path, real in resolved.items():
            owner = next(((q, o) for q, o in writable if q != real and within(real, q)), None)
            if owner is not None:
                folder, writer = owner
                results[name] = (
                    {},
                    (
                        f"host path {host_path} is below {folder}, which service {writer} mounts writable: its "
                        f"containers could swap a folder on the way for a symlink (mount {folder} read-only there)"
                    ),
                )
                break
    return results
