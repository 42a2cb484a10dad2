"""Click options several commands share (``-o`` lives with the output helpers in ``output.py``), and how a
daemon's flags and ``--config`` file become its configuration object (``meshop.config``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from meshop.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

LOCAL_CLUSTER = click.option(
    "--local-cluster",
    is_flag=True,
    envvar="MESHOP_LOCAL_CLUSTER",
    help="Every node runs on this host (demo, tests): node addresses on loopback/link-local are accepted. "
    "Off in a fleet, where such an address in a node record would point the gateway at its own host.",
)

TRUST_NODE_RECORDS = click.option(
    "--trust-node-records",
    is_flag=True,
    envvar="MESHOP_TRUST_NODE_RECORDS",
    help="A node without an entry in inventory/nodes/ is dialled at the address it claims itself (its record "
    "or catalog entry), as before the inventory. Off by default: such a node serves no route and logs/exec "
    "skip it; record its addresses with `meshop nodes inventory NODE ADDRESS...` instead.",
)


def field_default(fields: Mapping[str, Any], key: str) -> object:
    """A config field's default as a click option default (a tuple becomes the list click expects)."""
    value = fields[key].default
    return list(value) if isinstance(value, tuple) else value


def config_option(example: str) -> Callable[[F], F]:
    """``--config FILE``: the daemon's YAML configuration; the flags the user gives override its keys."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help=f"YAML configuration (e.g. {example}); its keys are these flags' names with '_' (docs/config.md). "
        "Flags given, or their environment variables, override the file.",
    )


def given_flags(ctx: click.Context) -> dict[str, object]:
    """The flags the user gave (on the command line or through their environment variable), by name;
    defaults left out, so a file's value is not overridden by a flag nobody typed."""
    given: dict[str, object] = {}
    for name, value in ctx.params.items():
        if name != "config_path" and ctx.get_parameter_source(name) in _GIVEN:
            given[name] = list(value) if isinstance(value, tuple) else value
    return given


def load_config(ctx: click.Context, load: Callable[[dict[str, object], Path | None], T]) -> T:
    """``load(given flags, --config path)``; its ``ConfigError`` becomes click's usage error of that flag
    (or of ``--config`` when the value came from the file): one line and exit code 64, no traceback."""
    try:
        return load(given_flags(ctx), ctx.params.get("config_path"))
    except ConfigError as exc:
        raise usage_error(ctx, exc) from None


def usage_error(ctx: click.Context, exc: ConfigError) -> click.UsageError:
    if exc.source:
        return click.BadParameter(f"{exc.source}: {exc.field}: {exc.reason}", ctx=ctx, param_hint="--config")
    flag = "--" + exc.field.replace("_", "-")
    if exc.missing:
        where = f"Give it, or {exc.field}: in the --config file." if ctx.params.get("config_path") else ""
        return click.MissingParameter(where, ctx=ctx, param_hint=f"'{flag}'", param_type="option")
    return click.BadParameter(exc.reason, ctx=ctx, param_hint=flag)
