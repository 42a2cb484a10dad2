"""``meshop acl policies | init | token ROLE [--node N] | sync [--watch]``: least-privilege Consul ACLs.

``init``, ``token`` and ``sync`` need a management token (``--token`` / ``CONSUL_HTTP_TOKEN``);
``policies`` only renders. ``token`` prints the SecretID alone on stdout, so it can be captured.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.client.acl import AclAdmin, ElectedAclSync
from meshop.errors import DocumentError
from meshop.model import acl as policies

ROLE = click.Choice(policies.ROLES)


@click.group()
def acl() -> None:
    """Consul ACL policies and tokens for each meshop role (docs/security.md)."""


@acl.command(name="policies")
@click.option("--role", type=ROLE, help="Only this role.")
@click.option(
    "--node", help="The node of an agent policy (without: a placeholder node NODE).", shell_complete=complete.nodes
)
@click.pass_obj
def show_policies(obj: CliContext, role: str | None, node: str | None) -> None:
    """Print the rendered policies (HCL) without touching Consul. An agent policy is shown without the
    services placement adds (``acl sync`` adds them)."""
    for name in [role] if role else policies.ROLES:
        target = (node or "node") if name in policies.NODE_ROLES else None
        try:
            rendered = policies.render(name, obj.consul.prefix, target)
        except policies.AclInputError as exc:
            raise DocumentError(str(exc)) from None
        click.echo(f"# {rendered.name}: {rendered.description}\n{rendered.rules}")


@acl.command()
@click.pass_obj
def init(obj: CliContext) -> None:
    """Create or update the policies of every role but the per-node agent (idempotent)."""
    for name, changed in AclAdmin(obj.consul).init():
        click.echo(f"policy/{name} {'written' if changed else 'unchanged'}")


@acl.command()
@click.argument("role", type=ROLE)
@click.option("--node", help="The agent's node (required for the agent role).", shell_complete=complete.nodes)
@click.pass_obj
def token(obj: CliContext, role: str, node: str | None) -> None:
    """Print the SecretID of ROLE's token, creating policy and token when missing (idempotent: the same
    role and node give the same token)."""
    click.echo(AclAdmin(obj.consul).token(role, node))


@acl.command()
@click.option("--watch", is_flag=True, help="Keep the agent policies in step until stopped (SIGTERM/Ctrl-C).")
@click.option(
    "--resync", type=click.FloatRange(1.0), default=30.0, show_default=True, help="Seconds between full syncs."
)
@click.option(
    "--id",
    "holder_id",
    envvar="MESHOP_ACL_SYNC_ID",
    default=socket.gethostname,
    show_default="the host name",
    help="This watcher's name in the election of the active syncer (one per host; `meshop init` and "
    "`node add --server` set the node's name).",
)
@click.option(
    "--check-ttl",
    type=click.FloatRange(1.0, 60.0),
    default=3.0,
    show_default=True,
    help="Seconds without a heartbeat before a standby may take over.",
)
@click.pass_obj
def sync(obj: CliContext, watch: bool, resync: float, holder_id: str, check_ttl: float) -> None:
    """Bring every agent policy in step with placement: secrets and service names of what is assigned to
    (or still runs on) its node. With --watch, run on every Consul server host: the watchers elect one
    active syncer (the lock P/locks/acl-sync), the others stand by (docs/security.md)."""
    admin = AclAdmin(obj.consul)
    if not watch:
        changed = admin.sync()
        click.echo(f"{len(changed)} agent polic{'y' if len(changed) == 1 else 'ies'} updated")
        for name in changed:
            click.echo(f"policy/{name} written")
        return
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", holder_id):
        raise DocumentError(f"--id {holder_id!r}: letters, digits, '.', '_' and '-' (a host name), at most 128")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    watcher = ElectedAclSync(obj.consul, resync, holder_id, check_ttl=check_ttl).start()
    try:
        stop.wait()
    finally:
        watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
