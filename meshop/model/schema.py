"""The packaged CRDs: loading, defaults, input sanitising and schema errors as Violations.

Schema errors come from ``meshop.model.schemacheck`` (the CRDs' subset of JSON Schema, without the
``jsonschema`` package's import cost); the tests hold it to ``jsonschema`` on generated documents.

Defaults live only in the schemas (``default`` keywords); ``apply_defaults`` is the one place that
fills them in, so the CRD files are the single source of truth for what an omitted field means.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

from meshop.errors import Violation
from meshop.model import paths
from meshop.model import schemawalk as walk
from meshop.model.schemacheck import SchemaError, Validator
from meshop.model.schemawalk import Schema
from meshop.model.yamlload import load_yaml

API_VERSION = "meshop.io/v1alpha1"  # of every kind (``meshop.model.service`` re-exports it)
SCHEMA_FILES = {"Service": "service.yaml", "Node": "node.yaml", "Gateway": "gateway.yaml"}
MAX_DEPTH = 64
MAX_VALUES = 200_000
MAX_INT = 2**63


@cache
def load_schema(kind: str) -> Schema:
    """The JSON Schema of ``kind``, read from the installed ``meshop.crds`` package data."""
    import meshop.crds  # the package data's directory; not ``importlib.resources`` (start-up time)

    name = SCHEMA_FILES[kind]
    with open(os.path.join(os.path.dirname(meshop.crds.__file__ or ""), name), encoding="utf-8") as handle:
        text = handle.read()
    (schema,) = load_yaml(text, source=f"crds/{name}", own_file=True)
    assert isinstance(schema, dict)
    return schema


def schema_for(kind: str) -> Schema | None:
    """Schema for a kind name, or None when the kind is not one of ours (used by the loader)."""
    return load_schema(kind) if kind in SCHEMA_FILES else None


@cache
def _validator(kind: str) -> Validator:
    return Validator(load_schema(kind))


def apply_defaults(value: object, schema: object, root: Schema) -> None:
    """Fill missing properties that declare a ``default``, recursively, in place.

    Tolerant of ill-typed input: defaults go only into dicts, so validation still reports the rest.
    """
    node = walk.deref(schema, root)
    if node is None:
        return
    if isinstance(value, dict):
        props = node.get("properties") or {}
        for key, raw in props.items():
            if key not in value:
                has, default = walk.default_of(raw, root)
                if has:
                    value[key] = copy.deepcopy(default)
            if key in value:
                apply_defaults(value[key], raw, root)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in props:
                    apply_defaults(item, extra, root)
    elif isinstance(value, list):
        for item in value:
            apply_defaults(item, node.get("items"), root)


class _TooLarge(Exception):
    pass


class Sanitized:
    """A plain JSON copy of any input, plus the problems that made parts of it unusable.

    jsonschema and the rules then only ever see dicts with str keys, lists, str, bool, None, ints of
    sane size and finite floats: no input can make them raise (huge ints cannot even be printed).
    """

    def __init__(self, value: object) -> None:
        self.violations: list[Violation] = []
        self.replaced: set[str] = set()  # paths whose value was swapped for a placeholder
        self.count = 0
        try:
            self.value = self._copy(value, (), 0)
        except _TooLarge:
            self.value = None
            self.violations = [Violation("", f"document has more than {MAX_VALUES} values")]

    def _flag(self, where: tuple[object, ...], reason: str, replaced: bool = True) -> None:
        self.violations.append(Violation(paths.join(where), reason))
        if replaced:
            self.replaced.add(paths.join(where))

    def _copy(self, value: object, where: tuple[object, ...], depth: int) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLarge
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            if not -MAX_INT < value < MAX_INT:
                self._flag(where, "integer is out of range")
                return 0
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                self._flag(where, "must be a finite number")
                return 0.0
            if value.is_integer() and abs(value) < 2**53:
                return int(value)  # JSON Schema's integers include 80.0: make them ints for the rules
            return float(value)
        if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
            self._flag(where, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(value, dict):
            out: dict[str, object] = {}
            for key, item in value.items():
                if isinstance(key, str):
                    out[str(key)] = self._copy(item, (*where, key), depth + 1)
                else:
                    reason = f"object keys must be strings, got {walk.json_type(key)}"
                    self._flag(where, reason, replaced=False)
            return out
        if isinstance(value, (list, tuple)):
            return [self._copy(item, (*where, i), depth + 1) for i, item in enumerate(value)]
        self._flag(where, f"{type(value).__name__} is not a JSON value")
        return None


def show(value: object) -> str:
    """Short, ASCII-only rendering of a value for a message."""
    import json  # only a message needs it (start-up time of a valid ``meshop validate``)

    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 48 else text[:45] + "..."


def describe(value: object) -> str:
    """``string "2"``, ``integer 70000``, ``object``: what a value is, for type errors."""
    kind = walk.json_type(value)
    return kind if kind in ("object", "array", "null") else f"{kind} {show(value)}"


def schema_violations(kind: str, doc: object) -> list[Violation]:
    """Every schema violation of an already sanitised document, translated to readable reasons."""
    out: list[Violation] = []
    for err in _validator(kind).iter_errors(doc):
        out.extend(_translate(err))
    return out


def _translate(err: SchemaError) -> Iterator[Violation]:
    at = list(err.absolute_path)
    where = paths.join(at)
    inst: Any = err.instance
    val: Any = err.validator_value
    schema = err.schema if isinstance(err.schema, dict) else {}
    if isinstance(schema.get("errorMessage"), str):
        yield Violation(where, schema["errorMessage"])
        return
    match err.validator:
        case "required":
            for name in val:
                if isinstance(inst, dict) and name not in inst:
                    yield Violation(paths.join([*at, name]), "is required")
        case "additionalProperties":
            known = list(schema.get("properties") or {})
            for key in inst:
                if key not in known:
                    yield Violation(paths.join([*at, key]), _unknown(key, known))
        case "type":
            wanted = " or ".join([val] if isinstance(val, str) else val)
            yield Violation(where, f"expected {wanted}, got {describe(inst)}")
        case "enum":
            yield Violation(where, "must be one of: " + ", ".join(str(v) for v in val))
        case "const":
            yield Violation(where, f"must be {val}")
        case "minimum":
            yield Violation(where, f"{show(inst)} is less than the minimum of {val}")
        case "maximum":
            yield Violation(where, f"{show(inst)} is greater than the maximum of {val}")
        case "exclusiveMinimum":
            yield Violation(where, f"{show(inst)} must be greater than {val}")
        case "minItems":
            yield Violation(where, "must not be empty" if val == 1 else f"must have at least {val} items")
        case "maxItems":
            yield Violation(where, f"has {len(inst)} items; at most {val} are allowed")
        case "oneOf":
            yield from _one_of(where, inst, val)
        case _:
            yield Violation(where, err.message[:200])  # a generic message may quote the whole value


def _unknown(key: str, known: list[str]) -> str:
    import difflib  # only when a key is unknown

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"unknown field (did you mean {close[0]}?)" if close else "unknown field"


def _one_of(where: str, inst: object, subs: list[Any]) -> Iterator[Violation]:
    """``oneOf`` of bare ``required`` lists means "exactly one of these fields"; say so."""
    names = [s["required"][0] for s in subs if isinstance(s, dict) and list(s) == ["required"]]
    if len(names) != len(subs):
        yield Violation(where, "must match exactly one of the allowed forms")
    elif isinstance(inst, dict):  # a non-object already has its own type error
        given = [n for n in names if n in inst]
        choice = ", ".join(names)
        yield Violation(where, f"needs one of: {choice}" if not given else f"only one of: {choice} may be set")
