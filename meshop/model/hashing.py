"""``spec_hash``: a short, stable fingerprint of what a service should run.

Controller and agent compare it to tell "this container runs the current spec" from "replace it",
so it must not depend on key order, on whether a default was written out, or on the process. Nor on
``replicas``: how many copies run is no property of one container, so scaling adds or removes
replicas and leaves the running ones untouched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from meshop.model.service import ServiceSpec


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, ASCII only: one byte sequence per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def spec_hash(spec: ServiceSpec | dict[str, Any]) -> str:
    """First 16 hex digits of sha256 over the canonical JSON of the defaulted, resolved spec.

    A dict is read with ``ServiceSpec.from_dict`` first, so ``10s`` and ``10`` or a port name and its
    number give the same hash; raises DocumentError when the dict cannot be read as a spec.
    """
    resolved = spec if isinstance(spec, ServiceSpec) else ServiceSpec.from_dict(spec)
    material = {k: v for k, v in resolved.to_dict().items() if k not in NOT_HASHED}
    placement = material.get("placement")
    if isinstance(placement, dict):  # whether replicas may move is no property of one container either
        material["placement"] = {k: v for k, v in placement.items() if k not in NOT_HASHED_PLACEMENT}
    return hashlib.sha256(canonical_json(material).encode("ascii")).hexdigest()[:16]


NOT_HASHED = frozenset({"replicas", "minReadySeconds"})  # spec fields that do not change what one container is
NOT_HASHED_PLACEMENT = frozenset({"rebalance"})

MAX_SPEC_BYTES = 256 * 1024  # an assignment (the spec + a few fields) base64-encoded stays well under 512 KiB


def spec_size_problem(spec: ServiceSpec) -> str | None:
    """Why the resolved ``spec`` is too large to place, or None. The controller refuses such a document
    and ``apply``/``import`` refuse it up front, by this one measure: every node's assignment carries
    the spec, and Consul takes at most 512 KiB per transaction, base64 included."""
    size = len(canonical_json(spec.to_dict()).encode("utf-8"))
    if size <= MAX_SPEC_BYTES:
        return None
    return (
        f"the resolved spec is {size} bytes; at most {MAX_SPEC_BYTES} (each node's assignment carries it, "
        "and Consul takes at most 512 KiB per transaction, base64 included)"
    )
