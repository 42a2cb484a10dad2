"""The ``meshop`` command: global flags, sub-command registration, and click's own errors.

Click is the reference for every command line: help, usage and every option live here; the commands
themselves are in ``meshop.cli.commands``, one module per command group. The console script enters
through ``meshop.cli.entry``, which runs a few simple, hot command lines through ``meshop.cli.fast``
without loading click and hands everything else to ``run`` here. Exit codes and the error -> exit code mapping:
``meshop.cli.exits``.
"""

from __future__ import annotations

import importlib

import click

from meshop.cli.context import CliContext
from meshop.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, guarded

# Each sub-command's module is imported only when that command runs (or for --help): ``meshop
# validate`` must not pay for the agent's Docker SDK, the controller or rich's tables (start-up time).
COMMANDS = {
    "status": "meshop.cli.commands.status:status",
    "get": "meshop.cli.commands.get:get",
    "describe": "meshop.cli.commands.get:describe",
    "events": "meshop.cli.commands.events:events",
    "top": "meshop.cli.commands.top:top",
    "apply": "meshop.cli.commands.documents:apply",
    "diff": "meshop.cli.commands.documents:diff",
    "validate": "meshop.cli.commands.documents:validate",
    "delete": "meshop.cli.commands.documents:delete",
    "edit": "meshop.cli.commands.edit:edit",
    "nodes": "meshop.cli.commands.nodes:nodes",
    "node": "meshop.cli.commands.nodes:nodes",
    "init": "meshop.cli.commands.bootstrap:init",
    "controller": "meshop.cli.commands.controller:controller",
    "agent": "meshop.cli.commands.agent:agent",
    "fence": "meshop.cli.commands.fence:fence",
    "gateway": "meshop.cli.commands.gateway:gateway",
    "export": "meshop.cli.commands.backup:export",
    "import": "meshop.cli.commands.backup:import_",
    "cluster": "meshop.cli.commands.backup:cluster",
    "acl": "meshop.cli.commands.acl:acl",
    "logs": "meshop.cli.commands.remote:logs",
    "exec": "meshop.cli.commands.remote:exec_",
    "dashboard": "meshop.cli.commands.dashboard:dashboard",
    "restart": "meshop.cli.commands.restart:restart",
    "rebalance": "meshop.cli.commands.rebalance:rebalance",
    "volume": "meshop.cli.commands.volume:volume",
    "convert": "meshop.cli.commands.convert:convert",
}


class LazyGroup(click.Group):
    """A group whose listed sub-commands (``COMMANDS``) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The group's own commands, then ``COMMANDS`` in their order, whichever have loaded already."""
        return [*(name for name in super().list_commands(ctx) if name not in COMMANDS), *COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--consul-addr", metavar="ADDR", help="Consul HTTP address [env: CONSUL_HTTP_ADDR; 127.0.0.1:8500]")
@click.option("--token", metavar="TOKEN", help="Consul ACL token [env: CONSUL_HTTP_TOKEN]")
@click.option("--prefix", metavar="PREFIX", help="KV prefix [env: MESHOP_PREFIX; meshop]")
@click.pass_context
def cli(ctx: click.Context, consul_addr: str | None, token: str | None, prefix: str | None) -> None:
    """meshop: declarative Docker services across a handful of nodes, on Consul KV."""
    ctx.obj = CliContext(addr=consul_addr, token=token, prefix=prefix)


@cli.command()
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)
def version(fmt: str) -> None:
    """Print meshop's version and build information (commit, Python, libraries)."""
    from meshop.cli.output import dump
    from meshop.cli.views import version_text
    from meshop.client.version import build_info

    info = build_info()
    click.echo(version_text(info) if fmt == "text" else dump(info, fmt), nl=False)


def run(argv: list[str] | None = None) -> int:
    """Run one command through click; returns its exit code. Errors become one line on stderr, never a
    traceback."""
    return guarded(lambda: _click_main(argv))


def _click_main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="meshop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0
