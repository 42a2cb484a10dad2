"""One strict codec for the records meshop's components exchange through Consul KV. Pure.

A record is a frozen dataclass whose field types are its schema. ``decode(cls, data)`` builds one from
parsed JSON and refuses anything that is not exactly the declared shape with a ``RecordError`` (a
``ValueError``) that names the field path and the reason, e.g. ``containers[1].hostPorts['80/tcp']:
expected an integer, got a string``. It never coerces: a node that writes ``"ready": "3"`` or
``"port": true`` wrote a broken (or hostile) record, and ``str(x)`` / ``int(x)`` would hide that.

=================  ====================================================================================
declared type      accepted JSON
=================  ====================================================================================
``str``            a string
``int``            an integer (not ``true``, not ``1.0``) within ±2**63
``float``          a number (an integer too: JSON has one number type), finite
``bool``           ``true`` or ``false``
``Literal[...]``   one of the listed values: states (container phase, condition status, node state...)
``X | None``       ``null`` or an X
``tuple[X, ...]``  an array of X
``Mapping[str, X]`` an object whose values are X
a record           an object, decoded by these rules
``Any``            any JSON value, kept as parsed (``Assignment.spec``: ``ServiceSpec.from_dict`` reads it)
=================  ====================================================================================

``Annotated[str, Cap(n)]`` (or a tuple) cuts text to ``n`` characters (items): display fields whose length
is not worth refusing the whole record for, such as a node's ``problem``.

Keys: a field's JSON name is its name in camelCase (``field(metadata={"json": ...})`` overrides). A field
without a default must be present; a field with a default may be missing (a record from an older version
that did not have it yet). **Unknown keys are ignored**: a newer writer may add a field an older reader
does not know, which is what lets agents and controllers of two versions run side by side during an
upgrade; so every new field gets a default. Values are the other way round: an unknown ``Literal`` value
is refused, so a new state is added in two releases (readers learn it in the first, writers use it in the
second).

``encode(record)`` is the inverse (camelCase keys, tuples as lists, mappings as dicts, nested records as
objects; values otherwise kept as they are); ``field(metadata={"omit": True})`` leaves a field out while it
holds its default (``failOpen``). With ``records.dumps`` it writes the bytes the hand-written encoders it
replaced wrote (``tests/unit/model/test_records_codec.py``), so writers still skip unchanged records.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union

T = TypeVar("T")
INT_LIMIT = 2**63
_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Cap:
    """``Annotated[str, Cap(n)]``: longer text (or a longer tuple) is cut to ``n``, not refused."""

    limit: int


class RecordError(ValueError):
    """A record that does not have its declared shape; ``path`` is where (``containers[0].phase``)."""

    def __init__(self, reason: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path  # field names, "[index]" and "['key']" segments, outermost first

    def within(self, segment: str) -> RecordError:
        return RecordError(self.reason, (segment, *self.path))

    def __str__(self) -> str:
        where = "".join(s if s.startswith("[") else f".{s}" for s in self.path).lstrip(".")
        return f"{where}: {self.reason}" if where else self.reason


Decoder = Callable[[object], Any]
Encoder = Callable[[Any], Any]


def decode(cls: type[T], data: object) -> T:
    """``data`` (parsed JSON) as a ``cls`` record, or RecordError."""
    return _plan(cls).decode(data)  # type: ignore[no-any-return]


def encode(record: object) -> dict[str, Any]:
    """The JSON-safe dict of ``record`` (``records.dumps`` serialises it canonically)."""
    return _plan(type(record)).encode(record)


def _kind(value: object) -> str:
    """How an error names what it got instead."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "an integer", float: "a number", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _want(what: str, value: object) -> RecordError:
    return RecordError(f"expected {what}, got {_kind(value)}")


def _str(value: object) -> str:
    if type(value) is not str:
        raise _want("a string", value)
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise _want("an integer", value)
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise RecordError("integer out of range")
    return value


def _float(value: object) -> float:
    if type(value) is int:
        if not -INT_LIMIT <= value < INT_LIMIT:
            raise RecordError("number out of range")
        return float(value)
    if type(value) is not float:
        raise _want("a number", value)
    if not math.isfinite(value):
        raise RecordError("number is not finite")
    return value


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise _want("true or false", value)
    return value


def _any(value: object) -> object:
    return value


def _same(value: object) -> object:
    return value


_SCALARS: dict[object, Decoder] = {str: _str, int: _int, float: _float, bool: _bool, Any: _any}


def _decoder(tp: Any) -> Decoder:
    """The decoder for one declared type (the table in the module docstring)."""
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        inner = _decoder(args[0])
        cap = next((a.limit for a in args[1:] if isinstance(a, Cap)), None)
        if cap is None:
            return inner
        return lambda value: inner(value[:cap] if isinstance(value, (str, list)) else value)
    if origin is Literal:
        allowed = frozenset(args)
        shown = ", ".join(repr(a) for a in args)

        def literal(value: object) -> object:
            if type(value) is not str or value not in allowed:
                raise RecordError(f"expected one of {shown}, got {value!r}"[:200])
            return value

        return literal
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"only X | None unions are records' fields: {tp!r}")
        inner = _decoder(rest[0])
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is a record's field: {tp!r}")
        item = _decoder(args[0])

        def array(value: object) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _want("an array", value)
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(item(v))
                except RecordError as exc:
                    raise exc.within(f"[{i}]") from None
            return tuple(out)

        return array
    if origin in (Mapping, dict):
        if args[0] is not str:
            raise TypeError(f"JSON object keys are strings: {tp!r}")
        values = _decoder(args[1])

        def mapping(value: object) -> dict[str, Any]:
            if type(value) is not dict:
                raise _want("an object", value)
            out = {}
            for k, v in value.items():
                try:
                    out[k] = values(v)
                except RecordError as exc:
                    raise exc.within(f"[{k[:40]!r}]") from None
            return out

        return mapping
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda value: _plan(tp).decode(value)  # looked up on use: a record may nest itself
    raise TypeError(f"no codec for {tp!r}")


def _encoder(tp: Any) -> Encoder:
    """The encoder for one declared type: the inverse of ``_decoder`` (values are not converted)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _encoder(args[0])
    if origin in (Union, types.UnionType):
        inner = _encoder(next(a for a in args if a is not type(None)))
        return _same if inner is _same else (lambda value: None if value is None else inner(value))
    if origin is tuple:
        item = _encoder(args[0])
        return list if item is _same else (lambda value: [item(v) for v in value])
    if origin in (Mapping, dict):
        values = _encoder(args[1])
        return dict if values is _same else (lambda value: {k: values(v) for k, v in value.items()})
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda value: _plan(tp).encode(value)
    return _same  # str, int, float, bool, Literal, Any: JSON as they are


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str
    decode: Decoder
    encode: Encoder
    required: bool
    omit: object  # the default to leave out, or _MISSING


class _Plan:
    """How one record class is read and written, worked out once from its fields."""

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls, include_extras=True)
        self.cls = cls
        self.fields = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not _MISSING else _MISSING
            if default is _MISSING and f.default_factory is not _MISSING:
                default = f.default_factory()
            required = f.default is _MISSING and f.default_factory is _MISSING
            omit = default if f.metadata.get("omit") else _MISSING
            tp = hints[f.name]
            key = f.metadata.get("json", camel(f.name))
            self.fields.append(_Field(f.name, key, _decoder(tp), _encoder(tp), required, omit))

    def decode(self, data: object) -> Any:
        if type(data) is not dict:
            raise _want("an object", data)
        values = {}
        for f in self.fields:
            if f.key in data:
                try:
                    values[f.name] = f.decode(data[f.key])
                except RecordError as exc:
                    raise exc.within(f.key) from None
            elif f.required:
                raise RecordError("missing", (f.key,))
        return self.cls(**values)

    def encode(self, record: object) -> dict[str, Any]:
        out = {}
        for f in self.fields:
            value = getattr(record, f.name)
            if f.omit is not _MISSING and value == f.omit:
                continue
            out[f.key] = value if f.encode is _same else f.encode(value)
        return out


@functools.cache
def _plan(cls: type) -> _Plan:
    return _Plan(cls)
