"""Small builders for test documents: a valid base and patches applied on copies of it."""

from __future__ import annotations

import copy
from typing import Any

IMAGE = "meshop-test/busybox:1"
API = "meshop.io/v1alpha1"


def service(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A valid Service document; ``spec`` keys replace the base spec's, ``top`` keys the document's."""
    doc: dict[str, Any] = {
        "apiVersion": API,
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"image": IMAGE, "ports": [{"name": "http", "container": 80}]},
    }
    doc["spec"].update(copy.deepcopy(spec or {}))
    doc.update(copy.deepcopy(top))
    return doc


def node(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": API, "kind": "Node", "metadata": {"name": "n1"}}
    if spec is not None:
        doc["spec"] = copy.deepcopy(spec)
    doc.update(copy.deepcopy(top))
    return doc


def gateway(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": API,
        "kind": "Gateway",
        "metadata": {"name": "gateway"},
        "spec": {"domains": ["example.com"], "tls": {"mode": "internal"}},
    }
    doc["spec"].update(copy.deepcopy(spec or {}))
    doc.update(copy.deepcopy(top))
    return doc


def pairs(violations: list[Any]) -> list[tuple[str, str]]:
    return [(v.path, v.reason) for v in violations]
