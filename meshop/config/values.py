"""How a daemon's configuration is read: defaults, then its YAML file, then the flags the user gave.

The rule (as Nomad's and Caddy's): a value comes from the flag when the user gave the flag (on the command
line or through the flag's environment variable), else from the config file (``--config``), else from the
default. A key the file does not know is an error naming it, never ignored: a typo must not run a node with
a default. Every value passes its field's parser, and every refusal is one ``ConfigError`` naming the field,
the reason and where the value came from. Pure apart from reading the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from meshop.errors import ConfigError

Parse = Callable[[object], object]  # the field's value, or ValueError(reason)


class Field(NamedTuple):
    """One configuration key: how its raw value (a flag's or the file's) is checked, and its default
    (already a parsed value; ``REQUIRED`` when the daemon cannot start without it)."""

    parse: Parse
    default: object = None


REQUIRED = object()


class Values:
    """The merged, parsed values of one configuration, and where each came from (for error messages)."""

    def __init__(self, values: dict[str, object], sources: dict[str, str]) -> None:
        self.values, self.sources = values, sources

    def __getitem__(self, key: str) -> object:
        return self.values[key]

    def error(self, key: str, reason: str) -> ConfigError:
        """A refusal of ``key``, naming the file when its value came from there."""
        return ConfigError(key, reason, self.sources.get(key, ""))


def read_file(path: Path) -> dict[str, object]:
    """The config file's mapping (an empty file: no keys)."""
    import yaml  # only a daemon with --config loads it here

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ConfigError("config", f"{path} is not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def merge(fields: Mapping[str, Field], given: Mapping[str, object], path: Path | None) -> Values:
    """Each field's value from ``given`` (the flags the user gave), else the file at ``path``, else its
    default; parsed. ``ConfigError`` for an unknown key in the file, a refused value, a missing required one."""
    file = read_file(path) if path is not None else {}
    for key in file:
        if not isinstance(key, str) or key not in fields:
            raise ConfigError(str(key), "unknown key (see docs/config.md for the keys)", str(path))
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for key, spec in fields.items():
        if key in given:
            raw, source = given[key], ""
        elif key in file:
            raw, source = file[key], str(path)
        elif spec.default is REQUIRED:
            raise ConfigError(key, "required", missing=True)
        else:
            values[key] = spec.default
            continue
        try:
            values[key] = spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(key, str(exc), source) from None
        sources[key] = source
    return Values(values, sources)


# --- parsers: each returns the checked value or raises ValueError(reason) ---------------------------------


def text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, not {_kind(raw)}")
    return raw


def optional(parse: Parse) -> Parse:
    """``parse``, or None for a null value (``key:`` or ``key: null`` in the file)."""
    return lambda raw: None if raw is None else parse(raw)


def number(low: float, high: float | None = None, *, integer: bool = False) -> Parse:
    def parse(raw: object) -> object:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or (integer and not isinstance(raw, int)):
            raise ValueError(f"expected {'an integer' if integer else 'a number'}, not {_kind(raw)}")
        if raw < low or (high is not None and raw > high):
            raise ValueError(f"{raw} is not in {low:g}..{high:g}" if high is not None else f"{raw} is below {low:g}")
        return raw if integer else float(raw)

    return parse


def port(raw: object) -> object:
    return number(1, 65535, integer=True)(raw)


def boolean(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"expected true or false, not {_kind(raw)}")
    return raw


def choice(*options: str) -> Parse:
    def parse(raw: object) -> str:
        if raw not in options:
            raise ValueError(f"{raw!r} is not one of {', '.join(options)}")
        return str(raw)

    return parse


def texts(raw: object) -> tuple[str, ...]:
    """A list of text (a repeated flag, or a YAML list)."""
    if not isinstance(raw, list | tuple):
        raise ValueError(f"expected a list, not {_kind(raw)}")
    return tuple(text(item) for item in raw)


def path(raw: object) -> Path:
    if isinstance(raw, Path):
        return raw
    if not text(raw).strip():
        raise ValueError("expected a path, not an empty text")
    return Path(str(raw))


def _kind(raw: object) -> str:
    return "nothing" if raw is None else {dict: "a mapping", list: "a list"}.get(type(raw), repr(raw))
