"""Where command output goes: a rich console for tables, JSON or YAML for scripts (``-o``)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from meshop.cli.views import to_yaml

if TYPE_CHECKING:  # rich costs ~30 ms to import: only the commands that draw tables load it
    from rich.console import Console, RenderableType

FORMATS = ("table", "json", "yaml")
OUTPUT = click.option(
    "-o", "--output", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
)


def console() -> Console:
    """Colours and the terminal's width on a terminal; plain and wide (no wrapped columns) in a pipe."""
    from rich.console import Console

    probe = Console(highlight=False)
    if probe.is_terminal:
        return probe
    return Console(highlight=False, width=int(os.environ.get("COLUMNS") or 0) or 250, soft_wrap=False)


def show(renderable: RenderableType) -> None:
    """Print to the terminal as rich does; in a pipe, without the tables' trailing padding."""
    out = console()
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    click.echo("".join(line.rstrip() + "\n" for line in captured.get().splitlines()), nl=False)


def dump(data: object, fmt: str) -> str:
    """``data`` as JSON (indented) or YAML text, ending with a newline."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return to_yaml(data)
