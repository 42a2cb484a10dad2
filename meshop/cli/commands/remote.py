"""``meshop logs SERVICE`` and ``meshop exec SERVICE -- CMD``: reach replicas over SSH (docs/cli.md).

Nodes are reached at the address in their node record, as ``--ssh-user`` on ``--ssh-port``; host keys
must be in known_hosts (``meshop node add`` puts them in meshop's own), or ``--accept-new-host-key``.
"""

from __future__ import annotations

import os
import sys

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER, TRUST_NODE_RECORDS
from meshop.cli.safe import strip_terminal
from meshop.errors import DocumentError, MeshopError

SSH_USER = click.option(
    "--ssh-user", default="root", show_default=True, envvar="MESHOP_SSH_USER", help="Login on nodes."
)
SSH_PORT = click.option(
    "--ssh-port",
    type=click.IntRange(1, 65535),
    default=22,
    show_default=True,
    envvar="MESHOP_SSH_PORT",
    help="SSH port of nodes.",
)
IDENTITY = click.option(
    "-i",
    "--identity",
    type=click.Path(dir_okay=False),
    envvar="MESHOP_SSH_IDENTITY",
    help="Private key file (default: ssh-agent and ~/.ssh/id_*).",
)
ACCEPT_NEW = click.option(
    "--accept-new-host-key", is_flag=True, help="Trust an unknown host key on first use (its fingerprint is printed)."
)


def ssh_options(ssh_user: str, ssh_port: int, identity: str | None, accept_new: bool):
    from meshop.client.remote import SshOptions
    from meshop.ssh.hostkeys import Trust
    from meshop.ssh.target import TargetError, parse_target

    try:
        parse_target(f"{ssh_user}@localhost")
    except TargetError as exc:
        raise DocumentError(f"--ssh-user: {exc}") from None
    return SshOptions(user=ssh_user, port=ssh_port, identity=identity, trust=Trust(accept_new=accept_new))


def _say(text: str) -> None:
    click.echo(strip_terminal(text), err=True)


@click.command()
@click.argument("service", shell_complete=complete.services)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--since", metavar="WHEN", help="Only lines since a duration ago (10m) or a time (2026-12-01T10:00:00Z).")
@click.option("--tail", type=click.IntRange(0), metavar="N", help="Only the last N lines of each replica.")
@click.option("--replica", type=click.IntRange(0), help="Only this replica number.")
@click.option("--node", help="Only replicas on this node.", shell_complete=complete.nodes)
@click.option("-t", "--timestamps", is_flag=True, help="Show each line's timestamp.")
@SSH_USER
@SSH_PORT
@IDENTITY
@ACCEPT_NEW
@LOCAL_CLUSTER
@TRUST_NODE_RECORDS
@click.pass_obj
def logs(
    obj: CliContext,
    service: str,
    follow: bool,
    since: str | None,
    tail: int | None,
    replica: int | None,
    node: str | None,
    timestamps: bool,
    ssh_user: str,
    ssh_port: int,
    identity: str | None,
    accept_new_host_key: bool,
    local_cluster: bool,
    trust_node_records: bool,
) -> None:
    """Print the output of SERVICE's replicas on every node, each line prefixed with node/replica."""
    from meshop.client.remote import Connections, locate, stream_logs
    from meshop.client.replicas import check_since

    check_since(since)
    found = locate(
        obj.consul, service, node=node, replica=replica, local_cluster=local_cluster, trust_records=trust_node_records
    )
    for reason in found.skipped:
        _say(f"skipped: {reason}")
    connections = Connections(ssh_options(ssh_user, ssh_port, identity, accept_new_host_key), _say)
    width = max(len(r.label) for r in found.replicas)
    failed = False
    try:
        for item in stream_logs(found.replicas, connections, follow=follow, since=since, tail=tail):
            if isinstance(item, MeshopError):
                failed = True
                _say(f"error: {item}")
                continue
            stamp = f"{item.timestamp} " if timestamps and item.timestamp else ""
            text = strip_terminal(item.text.decode("utf-8", "replace"))
            click.echo(f"{item.replica.label.ljust(width)} | {stamp}{text}")
    finally:
        connections.close()
    if failed:
        raise SystemExit(3)


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("service", shell_complete=complete.services)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--replica", type=click.IntRange(0), help="This replica number (default: the first running one).")
@click.option("--node", help="A replica on this node.", shell_complete=complete.nodes)
@click.option(
    "--tty/--no-tty", default=None, help="Allocate a terminal [default: when stdin and stdout are terminals]."
)
@SSH_USER
@SSH_PORT
@IDENTITY
@ACCEPT_NEW
@LOCAL_CLUSTER
@TRUST_NODE_RECORDS
@click.pass_obj
def exec_(
    obj: CliContext,
    service: str,
    command: tuple[str, ...],
    replica: int | None,
    node: str | None,
    tty: bool | None,
    ssh_user: str,
    ssh_port: int,
    identity: str | None,
    accept_new_host_key: bool,
    local_cluster: bool,
    trust_node_records: bool,
) -> None:
    """Run COMMAND in one replica of SERVICE (``meshop exec web -- sh -c 'ls /'``); exits with its code."""
    from meshop.client.remote import Connections, locate
    from meshop.client.replicas import exec_command
    from meshop.ssh.interactive import bridge

    found = locate(
        obj.consul, service, node=node, replica=replica, local_cluster=local_cluster, trust_records=trust_node_records
    )
    running = [r for r in found.replicas if r.state == "running"] or list(found.replicas)
    target = running[0]
    if tty is None:
        tty = sys.stdin.isatty() and sys.stdout.isatty()
    connections = Connections(ssh_options(ssh_user, ssh_port, identity, accept_new_host_key), _say)
    try:
        session = connections.to(target)
        try:
            size = os.get_terminal_size() if tty else os.terminal_size((80, 24))
        except OSError:  # --tty without a terminal
            size = os.terminal_size((80, 24))
        chan = session.channel(
            exec_command(target.container_id, command, tty=tty, interactive=True),
            pty=tty,
            term=os.environ.get("TERM", "xterm"),
            size=(size.columns, size.lines),
        )
        clean = _clean if sys.stdout.isatty() else None
        code = bridge(
            chan, tty=tty, stdin=sys.stdin.fileno(), stdout=sys.stdout.fileno(), stderr=sys.stderr.fileno(), clean=clean
        )
    finally:
        connections.close()
    raise SystemExit(code)


def _clean(data: bytes) -> bytes:
    return "\n".join(strip_terminal(line) for line in data.decode("utf-8", "replace").split("\n")).encode()
