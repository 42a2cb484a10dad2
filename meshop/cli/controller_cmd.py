"""``meshop controller ...``: the controller daemon."""

from __future__ import annotations

import click


@click.group()
def controller() -> None:
    """The controller: validates desired state, places services, rolls up status."""
