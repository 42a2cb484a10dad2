"""The ``meshop`` command: global flags, sub-command registration, and click's own errors.

Click is the reference for every command line: help, usage and every option live here. The console
script enters through ``meshop.cli.fast``, which runs a few simple, hot command lines without loading
click and hands everything else to ``run`` here. Exit codes and the error -> exit code mapping:
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
    "status": "meshop.cli.status_cmd:status",
    "get": "meshop.cli.get_cmd:get",
    "describe": "meshop.cli.get_cmd:describe",
    "events": "meshop.cli.events_cmd:events",
    "apply": "meshop.cli.docs_cmd:apply",
    "diff": "meshop.cli.docs_cmd:diff",
    "validate": "meshop.cli.docs_cmd:validate",
    "delete": "meshop.cli.docs_cmd:delete",
    "nodes": "meshop.cli.nodes_cmd:nodes",
    "node": "meshop.cli.nodes_cmd:nodes",
    "init": "meshop.cli.bootstrap_cmd:init",
    "controller": "meshop.cli.controller_cmd:controller",
    "agent": "meshop.cli.agent_cmd:agent",
    "gateway": "meshop.cli.gateway_cmd:gateway",
    "export": "meshop.cli.backup_cmd:export",
    "import": "meshop.cli.backup_cmd:import_",
    "cluster": "meshop.cli.backup_cmd:cluster",
    "acl": "meshop.cli.acl_cmd:acl",
    "logs": "meshop.cli.remote_cmd:logs",
    "exec": "meshop.cli.remote_cmd:exec_",
    "dashboard": "meshop.cli.dashboard_cmd:dashboard",
    "restart": "meshop.cli.restart_cmd:restart",
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


def main() -> None:
    """The console script of an install made before ``meshop.cli.fast`` became the entry point."""
    from meshop.cli.fast import main as fast_main

    fast_main()
