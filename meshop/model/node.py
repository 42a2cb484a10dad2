"""Node document value object: labels, cordon/drain, and the node's policy."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from meshop.errors import DocumentError
from meshop.model.frozen import FrozenDict, freeze
from meshop.model.policy import Policy
from meshop.model.schema import API_VERSION, apply_defaults, load_schema


@dataclass(frozen=True)
class NodeDoc:
    name: str
    labels: FrozenDict = field(default_factory=FrozenDict)
    cordon: bool = False  # no new replicas here
    drain: bool = False  # move replicas away
    policy: Policy = field(default_factory=Policy)
    annotations: FrozenDict = field(default_factory=FrozenDict)

    def to_dict(self) -> dict[str, Any]:
        metadata = {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)}
        spec = {"cordon": self.cordon, "drain": self.drain, "policy": self.policy.to_dict()}
        return {"apiVersion": API_VERSION, "kind": "Node", "metadata": metadata, "spec": spec}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NodeDoc:
        """Read a Node document (or ``to_dict()`` output) with defaults, without validating it."""
        try:
            d = copy.deepcopy(dict(doc))
            apply_defaults(d, load_schema("Node"), load_schema("Node"))
            meta, spec = d["metadata"], d["spec"]
            return cls(
                str(meta["name"]),
                freeze(meta["labels"]),
                bool(spec["cordon"]),
                bool(spec["drain"]),
                Policy.from_dict(spec["policy"]),
                freeze(meta["annotations"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocumentError(f"malformed node document: {type(exc).__name__}: {exc}") from None
