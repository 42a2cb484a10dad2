"""``meshop agent ...``: the node agent daemon."""

from __future__ import annotations

import click


@click.group()
def agent() -> None:
    """The node agent: keeps this node's containers equal to its assignments."""
