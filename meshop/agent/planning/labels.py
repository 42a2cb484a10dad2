"""The labels and names meshop puts on the Docker objects it manages, and the Consul id of each
replica (the phases look up its check by it, the registrar registers it); pure.

A container is the agent's only if it carries ``meshop.managed=true`` *and* ``meshop.node=<node>``:
another node sharing the engine, or a container made by hand, is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MANAGED = "meshop.managed"
NODE = "meshop.node"
SERVICE = "meshop.service"
SPEC_HASH = "meshop.spec-hash"  # the assignment's specHash
CONFIG_HASH = "meshop.config-hash"  # spec hash + digest of resolved secret values: what the planner compares
GENERATION = "meshop.generation"
REPLICA = "meshop.replica"
VOLUME = "meshop.volume"  # on volumes: the volume's name in the spec
DELETE_WITH_SERVICE = "meshop.delete-with-service"  # on volumes: "true" when the spec asks for it
STATEFUL = "meshop.stateful"  # on containers: "true" when it mounts a stateful volume (one writer ever)

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def is_label(name: str) -> bool:
    """An RFC 1123 label: what node and service names must be before they go into Docker names."""
    return bool(_LABEL_RE.match(name))


def replica_service_id(node: str, service: str, replica: int) -> str:
    """The Consul service id of one replica: ``meshop-<node>-<service>-<replica>``."""
    return f"meshop-{node}-{service}-{replica}"


IDENTITY = (MANAGED, NODE, SERVICE, REPLICA, SPEC_HASH, CONFIG_HASH, GENERATION)  # what ownership reads


def claims_meshop(image_labels: Mapping[str, str] | None) -> list[str]:
    """The identity labels (``IDENTITY``) an image sets itself, sorted. A container inherits its image's
    labels, so such an image could make any container run from it look like one of meshop's: the agent
    never creates containers from it and never takes a container of it for its own."""
    return sorted(key for key in (image_labels or {}) if key in IDENTITY)


def owner_filters(node: str) -> list[str]:
    """Docker ``label`` filters selecting exactly this node's managed objects."""
    return [f"{MANAGED}=true", f"{NODE}={node}"]


def owned_by(labels: Mapping[str, str] | None, node: str) -> bool:
    labels = labels or {}
    return labels.get(MANAGED) == "true" and labels.get(NODE) == node


def describe_owner(labels: Mapping[str, str] | None) -> str:
    """Whose a Docker object is, by its meshop labels, for an error message."""
    labels = labels or {}
    if labels.get(MANAGED) != "true":
        return "not made by meshop"
    what = f"service {labels.get(SERVICE, '?')}"
    if VOLUME in labels:
        what = f"volume {labels[VOLUME]} of {what}"
    return f"{what} on node {labels.get(NODE, '?')}"


def container_labels(node: str, service: str, replica: int, spec_hash: str, config_hash: str, generation: int) -> dict:
    return {
        MANAGED: "true",
        NODE: node,
        SERVICE: service,
        REPLICA: str(replica),
        SPEC_HASH: spec_hash,
        CONFIG_HASH: config_hash,
        GENERATION: str(generation),
    }


def container_name(node: str, service: str, replica: int, config_hash: str) -> str:
    """Unique per (node, service, replica, config): two nodes may share one engine, and a start-first
    update runs the old and the new container of one replica side by side."""
    return f"meshop-{node}-{service}-{replica}-{config_hash}"


def volume_name(node: str, service: str, name: str) -> str:
    return f"meshop-{node}-{service}-{name}"


def volume_labels(
    node: str, service: str, name: str, delete_with_service: bool, stateful: bool = False
) -> dict[str, str]:
    labels = {
        MANAGED: "true",
        NODE: node,
        SERVICE: service,
        VOLUME: name,
        DELETE_WITH_SERVICE: "true" if delete_with_service and not stateful else "false",
    }
    if stateful:
        labels[STATEFUL] = "true"  # never deleted by meshop; kept aside (recorded) once its service left
    return labels
