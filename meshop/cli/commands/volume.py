"""``meshop volume ls | backup | snapshots | restore``: stateful volumes and their restic backups.

Thin: the logic is in ``meshop.client.volumes``. Nothing here runs restic or reads a repository
password (an operator's token may not read secrets): ``backup`` asks the agent holding the volume
through KV, ``snapshots`` shows the list that agent last read from the repository, ``restore`` asks
that agent (which holds the volume's single-writer lock) to stop the service, restore, and start it.
"""

from __future__ import annotations

import time

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.output import OUTPUT, dump, show
from meshop.errors import NotFound


@click.group()
def volume() -> None:
    """Stateful volumes: list them (and stale copies kept aside), back them up now, list snapshots."""


@volume.command(name="ls")
@OUTPUT
@click.pass_obj
def ls(obj: CliContext, fmt: str) -> None:
    """Every stateful volume, the node holding it and its last backup; copies kept aside on nodes."""
    from meshop.cli.render import volumes_table
    from meshop.client.volume_list import read_volume_rows

    rows, now = read_volume_rows(obj.store()), time.time()
    if fmt != "table":
        click.echo(dump([row.to_dict(now) for row in rows], fmt), nl=False)
    elif not rows:
        click.echo("no stateful volumes")
    else:
        show(volumes_table(rows, now))


@volume.command()
@click.argument("service", shell_complete=complete.services)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the backup is done.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds --wait waits at most.")
@click.pass_obj
def backup(obj: CliContext, service: str, wait: bool, timeout: float) -> None:
    """Back up SERVICE's stateful volumes now (on the node holding them), whatever their schedule."""
    from meshop.client.volumes import request_backup, wait_for_request

    store = obj.store()
    ident = request_backup(store, service, time.time())
    click.echo(f"service/{service}: backup requested ({ident})")
    if not wait:
        return
    lines = wait_for_request(store, service, ident, timeout)
    if not lines:
        raise click.ClickException(f"no node reported the backup within {timeout:g}s (is the service running?)")
    failed = False
    for line in lines:
        b = line.backup
        if b.error:
            failed = True
            click.echo(f"  {b.volume} on {line.node}: FAILED ({b.reason}): {b.error}")
        else:
            click.echo(f"  {b.volume} on {line.node}: snapshot {b.snapshot}, {b.total_bytes} bytes, {b.duration:.1f}s")
    if failed:
        raise click.ClickException("the backup failed (above)")


@volume.command()
@click.argument("service", shell_complete=complete.services)
@OUTPUT
@click.pass_obj
def snapshots(obj: CliContext, service: str, fmt: str) -> None:
    """SERVICE's snapshots, newest first, as the node holding its volumes last listed the repository."""
    from meshop.cli.render import snapshots_table
    from meshop.client.volume_list import read_volume_rows
    from meshop.client.volumes import snapshots_of

    lines = [row.backup for row in read_volume_rows(obj.store()) if row.service == service and row.backup]
    if not lines:
        raise NotFound(f"no backups reported for service {service} (no stateful volume with a backup, or not run yet)")
    found = snapshots_of(lines)
    if fmt != "table":
        data = [{"volume": v, "id": s.id, "time": s.time, "host": s.host} for v, s in found]
        click.echo(dump(data, fmt), nl=False)
    else:
        show(snapshots_table(found))


@volume.command()
@click.argument("service", shell_complete=complete.services)
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id (see `volume snapshots`).")
@click.option("--volume", "volume_name", default="", help="Only this volume (needed with --snapshot ID when several).")
@click.option("--to-node", "to_node", default="", help="Restore onto this node instead: the service moves there.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the restore is done.")
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="Seconds --wait waits at most.")
@click.pass_obj
def restore(
    obj: CliContext, service: str, snapshot: str, volume_name: str, to_node: str, wait: bool, timeout: float
) -> None:
    """Restore SERVICE's volume(s) from a snapshot on the node running it: the service is stopped
    first (its node holds the volume lock: no other copy can write), the files it replaces are kept
    beside the volume (meshop-before-restore-ID), then the same container starts again.

    With --to-node N the service moves to N instead: its copy is stopped first (its volume kept on the
    old node, listed by `volume ls`), and N restores the snapshot into a fresh volume before starting it."""
    from meshop.client.volumes import request_restore, wait_for_restore

    store = obj.store()
    if to_node:
        if volume_name:
            raise click.UsageError("--to-node moves the whole service: every backed-up volume (no --volume)")
        _restore_to_node(obj, service, snapshot, to_node, wait, timeout)
        return
    ident = request_restore(store, service, snapshot, volume_name, time.time())
    click.echo(f"service/{service}: restore of {snapshot} requested ({ident})")
    if not wait:
        return
    found = wait_for_restore(store, service, ident, timeout)
    if found is None:
        raise click.ClickException(f"no node reported the restore within {timeout:g}s (is the service running?)")
    node, report = found
    if not report.ok:
        raise click.ClickException(f"the restore on {node} failed ({report.reason}): {report.error}")
    for volume, snap in zip(report.volumes, report.snapshots, strict=False):
        click.echo(f"  {volume} on {node}: restored snapshot {snap} in {report.duration:.1f}s")
    click.echo(f"  the files it replaced are kept beside each volume's folder, in {report.kept_aside}")


def _restore_to_node(obj: CliContext, service: str, snapshot: str, node: str, wait: bool, timeout: float) -> None:
    from meshop.client.volume_moves import request_move, wait_for_move

    store = obj.store()
    ident = request_move(store, service, node, snapshot, time.time())
    click.echo(f"service/{service}: move to {node} with a restore of {snapshot} requested ({ident})")
    if not wait:
        return
    outcome = wait_for_move(store, service, ident, node, timeout)
    if outcome is None:
        raise click.ClickException(f"{node} did not report the service running within {timeout:g}s (meshop describe)")
    if not outcome.ok:
        raise click.ClickException(f"the restore on {node} failed: {outcome.message}")
    click.echo(f"  {outcome.message}; its volume on the old node is kept (meshop volume ls)")
