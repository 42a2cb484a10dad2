"""Safe, schema-directed YAML loading.

PyYAML's SafeLoader follows YAML 1.1, where ``1.10`` is the float 1.1, ``2024-01-02`` a date and
``yes``/``on`` true. Here every plain (unquoted) scalar is kept as text, tagged ``PLAIN_TAG``, and only
converted once we know what the schema expects at that position:

* the schema expects integer/number/boolean/null: the text is read by YAML 1.2 *core* rules (booleans
  are only true/false in their three spellings, no timestamps, no sexagesimal, no yes/no/on/off);
* the schema expects a string: the text is kept exactly as written;
* the schema says nothing: YAML 1.2 core rules.

Quoted scalars are always strings. Only the core tags (str, int, float, bool, null, seq, map) are
accepted; ``!!python/...``, ``!!timestamp``, ``!!binary``, custom tags and merge keys are refused.
Depth, alias count and the number of values after alias expansion are capped (billion laughs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from meshop.errors import DocumentError
from meshop.model import schemawalk as walk
from meshop.model.schemawalk import Schema

PLAIN_TAG = "tag:meshop.io,2024:plain"
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_VALUES = 100_000
MAX_INT_DIGITS = 400

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_Y + t for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = _Y + "seq", _Y + "map"

_NULL_RE = re.compile(r"(?:null|Null|NULL|~|)")
_BOOL_MAP = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", re.ASCII)
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_INF_RE = re.compile(r"([-+]?)\.(?:inf|Inf|INF)")
_NAN_RE = re.compile(r"\.(?:nan|NaN|NAN)")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# kind -> the root schema that directs plain-scalar conversion (None: YAML 1.2 core rules throughout).
SchemaFor = Callable[[str], "Schema | None"]


class _TooComplex(Exception):
    """Raised inside the composer; carries the problem and the mark to report."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class _Limits:
    """Plain scalars resolved to ``PLAIN_TAG``; depth and alias count capped while composing."""

    _depth = 0
    _aliases = 0

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return PLAIN_TAG
        return super().resolve(kind, value, implicit)  # type: ignore[misc, no-any-return]

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _TooComplex(f"more than {MAX_ALIASES} aliases", self.peek_event().start_mark)  # type: ignore[attr-defined]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooComplex(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)  # type: ignore[attr-defined]
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1


class _Loader(_Limits, yaml.SafeLoader):
    """SafeLoader's reader, scanner, parser and composer, with meshop's limits: for every user input."""


try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    _FastLoader: type | None = None
else:

    class _FastLoader(_Limits, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[no-redef, misc]
        """libyaml's parser (C) under the same composer, resolver and limits: about ten times faster, for
        meshop's own files (the CRDs, read by every command that validates). Its error messages and
        positions differ from the pure-Python parser's, which is why user input does not go through it."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def show_tag(tag: str) -> str:
    """``!!int`` rather than ``tag:yaml.org,2002:int`` in messages."""
    return "!!" + tag[len(_Y) :] if tag.startswith(_Y) else tag


def quoted_text(value: str) -> str:
    """Join JSON-style surrogate-pair escapes (``"\\ud83d\\ude00"``), which PyYAML leaves split."""
    if _SURROGATE_RE.search(value):
        try:
            return value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            return value
    return value


def where(source: str, line: int, column: int) -> str:
    """``source:line:column`` (1-based), or ``line L, column C`` without a source."""
    return f"{source}:{line}:{column}" if source else f"line {line}, column {column}"


def resolve_plain(text: str) -> object:
    """Read a plain scalar by YAML 1.2 core-schema rules."""
    if _NULL_RE.fullmatch(text):
        return None
    if text in _BOOL_MAP:
        return _BOOL_MAP[text]
    if _INT_RE.fullmatch(text):
        if len(text) > MAX_INT_DIGITS:
            raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    if m := _INF_RE.fullmatch(text):
        return -math.inf if m.group(1) == "-" else math.inf
    if _NAN_RE.fullmatch(text):
        return math.nan
    return text


class _Builder:
    """Turns composed nodes into Python values, guided by a schema, counting every value built."""

    def __init__(self, source: str, root: Schema | None) -> None:
        self.source, self.root = source, root
        self.count = 0
        self.active: set[int] = set()

    def fail(self, node: Any, problem: str) -> DocumentError:
        mark = node.start_mark
        return DocumentError(f"{where(self.source, mark.line + 1, mark.column + 1)}: {problem}")

    def build(self, node: Any, schema: Schema | None, depth: int = 0) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"document expands to more than {MAX_VALUES} values (alias bomb?)")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, schema)
        if id(node) in self.active:
            raise self.fail(node, "recursive alias")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    raise self.fail(node, f"tag {show_tag(node.tag)} is not allowed")
                sub = walk.items(schema, self.root) if self.root else None
                return [self.build(item, sub, depth + 1) for item in node.value]
            if node.tag != _MAP:
                raise self.fail(node, f"tag {show_tag(node.tag)} is not allowed")
            out: dict[str, object] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node)
                if key in out:
                    raise self.fail(key_node, f"duplicate key {key!r}")
                sub = walk.prop(schema, self.root, key) if self.root else None
                out[key] = self.build(value_node, sub, depth + 1)
            return out
        finally:
            self.active.discard(id(node))

    def key(self, node: Any) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "mapping keys must be strings, not collections")
        if node.tag == _STR:
            return quoted_text(node.value)
        if node.tag != PLAIN_TAG:
            raise self.fail(node, f"mapping keys must be strings, not {show_tag(node.tag)}")
        if node.value == "<<":
            raise self.fail(node, "merge keys (<<) are not supported: write the fields out")
        value = self.core(node)
        if not isinstance(value, str):
            raise self.fail(node, f"mapping key {node.value!r} is not a string: quote it")
        return value

    def core(self, node: Any) -> object:
        try:
            return resolve_plain(node.value)
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None

    def scalar(self, node: Any, schema: Schema | None) -> object:
        text, tag = node.value, node.tag
        if tag == _STR:
            return quoted_text(text)
        if tag == PLAIN_TAG:
            types = walk.allowed_types(schema)
            if types == frozenset(["string"]):
                return text
            value = self.core(node)
            if types is None or walk.accepts(types, value) or "string" not in types:
                return value
            return text
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            value = self.core(node)
            wanted = {_INT: "integer", _FLOAT: "number", _BOOL: "boolean", _NULL: "null"}[tag]
            if wanted == "number" and walk.json_type(value) == "integer":
                return float(value)  # type: ignore[arg-type]
            if walk.json_type(value) != wanted:
                raise self.fail(node, f"{text!r} is not a valid {show_tag(tag)}")
            return value
        raise self.fail(node, f"tag {show_tag(tag)} is not allowed")


def _kind_of(node: Any) -> str | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "kind" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None


def load_yaml(
    text: str, source: str = "", schema_for: SchemaFor | None = None, *, own_file: bool = False
) -> list[object]:
    """Every document of a YAML stream, as JSON-like values; empty documents are skipped.

    ``schema_for(kind)`` gives the root schema that directs plain-scalar conversion of a mapping
    document with that ``kind``; a top-level sequence is read as a list of such documents.
    ``own_file``: one of meshop's packaged files (a CRD): parsed by libyaml when PyYAML has it.
    """
    docs: list[object] = []
    builder = _Builder(source, None)
    loader: Any = None
    try:
        loader = (_FastLoader if own_file and _FastLoader is not None else _Loader)(text)
        while loader.check_node():
            node = loader.get_node()
            parts = node.value if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ else [node]
            for part in parts:
                if isinstance(part, yaml.ScalarNode) and part.tag == PLAIN_TAG and part.value == "":
                    continue
                kind = _kind_of(part)
                builder.root = schema_for(kind) if schema_for and kind is not None else None
                docs.append(builder.build(part, builder.root))
    except _TooComplex as exc:
        raise DocumentError(f"{where(source, exc.mark.line + 1, exc.mark.column + 1)}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = where(source, mark.line + 1, mark.column + 1) if mark else (source or "input")
        raise DocumentError(f"{at}: {exc.problem or exc.context or 'invalid YAML'}") from None
    except yaml.reader.ReaderError as exc:  # no mark: only an offset into the text
        line = text.count("\n", 0, exc.position) + 1
        problem = f"character #x{exc.character:04x} is not allowed in YAML"
        raise DocumentError(
            f"{where(source, line, exc.position - text.rfind(chr(10), 0, exc.position))}: {problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source or 'input'}: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{source or 'input'}: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs
