"""Bind mounts only below the host folders the agent was started with (``--allow-bind-mount PATH``).

A spec's ``hostPath`` is resolved on this host (``os.path.realpath``: every symlink and ``..`` followed)
and allowed only when the result is one of the allowed folders (themselves resolved) or below one; the
resolved path, not the spec's, is what Docker mounts. So ``/srv/app/../../etc`` or a symlink
``/srv/app/link -> /`` planted by a container that can write ``/srv/app`` never reaches outside.

Left open (documented): a component swapped for a symlink between this check and Docker's mount (a
writer racing the agent), and a Docker engine on another host than the agent (``--docker-host``),
where this host's filesystem says nothing about the engine's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from meshop.model import ServiceSpec


def within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or below it (both already resolved, absolute)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def resolve_binds(spec: ServiceSpec, allowed: Iterable[str]) -> tuple[dict[str, str], str | None]:
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
        if not any(within(real, root) for root in roots):
            shown = f"{volume.host_path} (resolves to {real})" if real != volume.host_path else volume.host_path
            return {}, f"host path {shown} is outside the agent's --allow-bind-mount folders: {', '.join(roots)}"
        resolved[volume.host_path] = real
    return resolved, None
