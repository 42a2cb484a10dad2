"""The ``meshop`` command: global flags, sub-command registration, and error -> exit code mapping.

No traceback ever reaches a user: a ``MeshopError`` prints one clear message and exits with its code;
anything else is reported as an internal error. Exit codes: 0 ok, 1 invalid input or not found,
2 Consul unreachable or access denied, 3 a host driver failed, 64 usage error, 70 internal error,
130 interrupted. (``meshop diff`` exits 1 when there are changes; ``meshop status --check`` exits 1
when something is not Ready.)
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from meshop.cli.context import CliContext
from meshop.cli.safe import printable  # tiny (re only): error lines from KV are escaped
from meshop.consul.config import ConsulConfig
from meshop.errors import MeshopError

EXIT_USAGE = 64

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
        return [*super().list_commands(ctx), *(name for name in COMMANDS if name not in self.commands)]

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
    ctx.obj = CliContext(consul=ConsulConfig.from_env(addr=consul_addr, token=token, prefix=prefix))


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
    """Run one command; returns its exit code. Errors become one line on stderr, never a traceback."""
    try:
        cli.main(args=argv, prog_name="meshop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MeshopError as exc:
        click.echo(f"Error: {printable(exc, multiline=True)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `meshop events | head`: the reader left; nothing is wrong
        _silence_stdout()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback for users
        click.echo(f"Internal error: {type(exc).__name__}: {printable(exc)} (please report this)", err=True)
        return 70
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def main() -> None:
    sys.exit(run())
