"""``meshop nodes cordon | uncordon | drain NAME``."""

from __future__ import annotations

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER
from meshop.client.nodes import set_inventory, set_node_mode


@click.group()
def nodes() -> None:
    """Node maintenance: cordon (no new work), drain (move work off, start-first), uncordon."""


def _mode_command(mode: str, help_text: str) -> click.Command:
    @click.command(name=mode, help=help_text)
    @click.argument("name", shell_complete=complete.nodes)
    @click.pass_obj
    def command(obj: CliContext, name: str) -> None:
        _, changed = set_node_mode(obj.store(), name, mode)
        click.echo(f"node/{name} {mode}ed" if changed else f"node/{name} already {mode}ed")

    return command


nodes.add_command(_mode_command("cordon", "Stop placing new work on NAME; what runs there stays."))
nodes.add_command(_mode_command("uncordon", "Allow new work on NAME again (ends a drain too)."))
nodes.add_command(_mode_command("drain", "Move NAME's work elsewhere, start-first, then keep it cordoned."))


@nodes.command(name="inventory")
@click.argument("name")
@click.argument("addresses", nargs=-1, required=True)
@LOCAL_CLUSTER
@click.pass_obj
def inventory(obj: CliContext, name: str, addresses: tuple[str, ...], local_cluster: bool) -> None:
    """Record ADDRESSES as the only ones node NAME may be dialled at (routes, DNS direct mode, logs/exec),
    whatever its own record or catalog entry says. Needs the operator's token; `meshop node add` does it."""
    before, changed = set_inventory(obj.store(), name, addresses, local_cluster=local_cluster)
    if not changed:
        click.echo(f"node/{name} inventory unchanged")
    else:
        was = f" (was {', '.join(before)})" if before else ""
        click.echo(f"node/{name} inventory: {', '.join(dict.fromkeys(addresses))}{was}")


def _bootstrap_commands() -> None:
    """``meshop node add`` (SSH bootstrap) lives with ``init`` in commands.bootstrap; it is registered here."""
    from meshop.cli.commands.bootstrap import node_add, node_remove

    nodes.add_command(node_add)
    nodes.add_command(node_remove)


_bootstrap_commands()
