"""Just enough JSON Schema navigation to follow a document through its schema (no validation here).

Used by the YAML loader (which type does this position expect?) and by the defaults walker.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
_MAX_REFS = 16


def deref(node: object, root: Schema) -> Schema | None:
    """Follow local ``$ref`` (``#/$defs/x``) chains; None for boolean or missing schemas."""
    for _ in range(_MAX_REFS):
        if not isinstance(node, dict):
            return None
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: object = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        node = target
    return None


def prop(node: Schema | None, root: Schema, key: str) -> Schema | None:
    """Schema of the value at ``key`` of an object described by ``node``, or None when unknown."""
    node = deref(node, root)
    if node is None:
        return None
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        return deref(props[key], root)
    extra = node.get("additionalProperties")
    return deref(extra, root) if isinstance(extra, dict) else None


def items(node: Schema | None, root: Schema) -> Schema | None:
    """Schema of the items of an array described by ``node``, or None when unknown."""
    node = deref(node, root)
    return deref(node.get("items"), root) if node is not None else None


def default_of(raw: object, root: Schema) -> tuple[bool, object]:
    """``(True, default)`` when the property schema (or what it refers to) declares a default."""
    if isinstance(raw, dict) and "default" in raw:
        return True, raw["default"]
    target = deref(raw, root)
    if target is not None and "default" in target:
        return True, target["default"]
    return False, None


def json_type(value: object) -> str:
    """JSON Schema type name of a Python value (``integer`` before ``number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def allowed_types(node: Schema | None) -> frozenset[str] | None:
    """Types a position accepts, from ``type`` or else ``enum``/``const``; None when unconstrained."""
    if node is None:
        return None
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset([declared])
    if isinstance(declared, list):
        return frozenset(t for t in declared if isinstance(t, str))
    if "const" in node:
        return frozenset([json_type(node["const"])])
    if isinstance(node.get("enum"), list):
        return frozenset(json_type(v) for v in node["enum"])
    return None


def accepts(types: frozenset[str], value: object) -> bool:
    """Whether ``value`` has one of ``types`` (an integer also satisfies ``number``)."""
    kind = json_type(value)
    return kind in types or (kind == "integer" and "number" in types)
