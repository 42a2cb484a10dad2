"""A JSON Schema (draft 2020-12) validator for exactly the keywords meshop's CRDs use.

Why not the ``jsonschema`` package: importing it (with ``referencing``, ``rpds``, ``attrs`` and its
format checkers) takes longer than everything else ``meshop validate`` does; this walk is a few
hundred lines short of that and has no imports. It yields the errors ``jsonschema``'s ``iter_errors``
yields for these keywords, with the same fields (``validator``, ``validator_value``, ``absolute_path``,
``instance``, ``schema``), so the messages built from them are unchanged; the unit tests hold it to
``jsonschema`` itself on generated documents.

A keyword it does not know is refused when a schema is checked (``unsupported``), never silently
ignored: a CRD that starts using one fails its tests until the keyword is added here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

# keywords that only annotate (or are read by the keyword next to them: ``then``/``else`` by ``if``)
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "default", "examples", "errorMessage", "then", "else"}
)
KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "additionalProperties",
        "required",
        "$ref",
        "const",
        "enum",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
        "not",
        "oneOf",
        "allOf",
        "if",
    }
)


class SchemaError(NamedTuple):
    """One failed keyword: what ``jsonschema.ValidationError`` carries, as far as meshop reads it. (Not a
    dataclass: validating a document, ``meshop validate``, never loads ``dataclasses``.)"""

    validator: str  # the keyword that failed
    validator_value: Any  # its value in the schema
    absolute_path: tuple[str | int, ...]  # where in the instance
    instance: Any  # the failing value
    schema: dict[str, Any]  # the schema object holding the keyword
    message: str


def unsupported(schema: object) -> list[str]:
    """Keywords in ``schema`` (anywhere) this validator does not implement; [] when it can check it."""
    found: list[str] = []

    def visit(node: object) -> None:
        if not isinstance(node, dict):
            return
        found.extend(k for k in node if k not in KEYWORDS and k not in ANNOTATIONS)
        for key in ("properties", "$defs"):
            for sub in (node.get(key) or {}).values():
                visit(sub)
        for key in ("additionalProperties", "items", "not", "if", "then", "else"):
            visit(node.get(key))
        for key in ("oneOf", "allOf"):
            for sub in node.get(key) or ():
                visit(sub)

    visit(schema)
    return sorted(set(found))


class Validator:
    """``iter_errors(instance)`` for one root schema (``$ref`` resolves ``#/...`` within it)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        missing = unsupported(schema)
        if missing:
            raise ValueError(f"schema keywords not supported by meshop.model.schemacheck: {', '.join(missing)}")
        self.root = schema

    def iter_errors(self, instance: object) -> Iterator[SchemaError]:
        return self._errors(instance, self.root, ())

    def is_valid(self, instance: object, schema: object) -> bool:
        return next(self._errors(instance, schema, ()), None) is None

    def _errors(self, inst: Any, schema: Any, at: tuple[str | int, ...]) -> Iterator[SchemaError]:
        if schema is True or not isinstance(schema, dict):
            return
        for keyword, value in schema.items():
            check = _CHECKS.get(keyword)
            if check is not None:
                yield from check(self, value, inst, schema, at)

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def _error(keyword: str, value: Any, inst: Any, schema: dict, at: tuple, message: str) -> SchemaError:
    return SchemaError(keyword, value, at, inst, schema, message)


def is_type(inst: object, kind: str) -> bool:
    if kind == "object":
        return isinstance(inst, dict)
    if kind == "array":
        return isinstance(inst, list)
    if kind == "string":
        return isinstance(inst, str)
    if kind == "boolean":
        return isinstance(inst, bool)
    if kind == "null":
        return inst is None
    if isinstance(inst, bool):
        return False
    if kind == "integer":
        return isinstance(inst, int) or (isinstance(inst, float) and inst.is_integer())
    if kind == "number":
        return isinstance(inst, (int, float))
    raise ValueError(f"unknown JSON Schema type {kind!r}")


def equal(one: object, two: object) -> bool:
    """JSON equality: ``true`` is not ``1``; containers compared item by item."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, (dict, list)) or isinstance(two, (dict, list)):
        return False
    return one == two


def _number(inst: object) -> bool:
    return isinstance(inst, (int, float)) and not isinstance(inst, bool)


def _type(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    kinds = [value] if isinstance(value, str) else value
    if not any(is_type(inst, kind) for kind in kinds):
        yield _error("type", value, inst, schema, at, f"{inst!r} is not of type {', '.join(map(repr, kinds))}")


def _properties(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if isinstance(inst, dict):
        for name, sub in value.items():
            if name in inst:
                yield from v._errors(inst[name], sub, (*at, name))


def _additional(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if not isinstance(inst, dict):
        return
    known = schema.get("properties") or {}
    extras = [key for key in inst if key not in known]
    if isinstance(value, dict):
        for key in extras:
            yield from v._errors(inst[key], value, (*at, key))
    elif value is False and extras:
        names = ", ".join(repr(key) for key in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"
        message = f"Additional properties are not allowed ({names} {verb} unexpected)"
        yield _error("additionalProperties", value, inst, schema, at, message)


def _required(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if isinstance(inst, dict):
        for name in value:
            if name not in inst:
                yield _error("required", value, inst, schema, at, f"{name!r} is a required property")


def _ref(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    yield from v._errors(inst, v.resolve(value), at)


def _const(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if not equal(inst, value):
        yield _error("const", value, inst, schema, at, f"{value!r} was expected")


def _enum(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if not any(equal(inst, choice) for choice in value):
        yield _error("enum", value, inst, schema, at, f"{inst!r} is not one of {value!r}")


def _items(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if isinstance(inst, list):
        for index, item in enumerate(inst):
            yield from v._errors(item, value, (*at, index))


def _minimum(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if _number(inst) and inst < value:
        yield _error("minimum", value, inst, schema, at, f"{inst!r} is less than the minimum of {value!r}")


def _maximum(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if _number(inst) and inst > value:
        yield _error("maximum", value, inst, schema, at, f"{inst!r} is greater than the maximum of {value!r}")


def _exclusive_minimum(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if _number(inst) and inst <= value:
        message = f"{inst!r} is less than or equal to the minimum of {value!r}"
        yield _error("exclusiveMinimum", value, inst, schema, at, message)


def _min_items(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if isinstance(inst, list) and len(inst) < value:
        yield _error("minItems", value, inst, schema, at, f"{inst!r} should be non-empty")


def _max_items(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if isinstance(inst, list) and len(inst) > value:
        yield _error("maxItems", value, inst, schema, at, f"has {len(inst)} items; at most {value} are allowed")


def _not(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    if v.is_valid(inst, value):
        yield _error("not", value, inst, schema, at, f"{inst!r} should not be valid under {value!r}")


def _one_of(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    valid = [sub for sub in value if v.is_valid(inst, sub)]
    if not valid:
        yield _error("oneOf", value, inst, schema, at, f"{inst!r} is not valid under any of the given schemas")
    elif len(valid) > 1:
        yield _error("oneOf", value, inst, schema, at, f"{inst!r} is valid under each of {valid!r}")


def _all_of(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    for sub in value:
        yield from v._errors(inst, sub, at)


def _if(v: Validator, value: Any, inst: Any, schema: dict, at: tuple) -> Iterator[SchemaError]:
    branch = "then" if v.is_valid(inst, value) else "else"
    if branch in schema:
        yield from v._errors(inst, schema[branch], at)


_CHECKS = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "$ref": _ref,
    "const": _const,
    "enum": _enum,
    "items": _items,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "minItems": _min_items,
    "maxItems": _max_items,
    "not": _not,
    "oneOf": _one_of,
    "allOf": _all_of,
    "if": _if,
}
assert set(_CHECKS) == KEYWORDS
