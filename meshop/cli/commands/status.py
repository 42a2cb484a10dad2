"""``meshop status [-o table|json|yaml] [--watch] [--check]``: services and nodes on one screen; reads only."""

from __future__ import annotations

import json

import click
from rich.text import Text

from meshop.cli.context import CliContext
from meshop.cli.output import OUTPUT, console, dump, show
from meshop.cli.render import status_view, timestamp
from meshop.client.cluster import read_control_plane, read_snapshot
from meshop.client.status import StatusReport, build_report
from meshop.client.watch import StatusWatch
from meshop.consul.store import KVStore
from meshop.errors import NoQuorum


@click.command()
@OUTPUT
@click.option("-w", "--watch", is_flag=True, help="Redraw whenever something changes (Consul blocking queries).")
@click.option(
    "--check", is_flag=True, help="Exit 1 unless a controller leads, every service is Healthy and every node Ready."
)
@click.pass_obj
def status(obj: CliContext, fmt: str, watch: bool, check: bool) -> None:
    """Services (READY, HEALTH: converging or failed, MESSAGE) and nodes (STATUS, LAST SEEN); the control
    plane (Consul's servers) when losing one host would stop failover; exit 2 when it has no quorum."""
    if watch and check:
        raise click.UsageError("--watch and --check do not go together")
    plane = read_control_plane(KVStore(obj.consul))  # fails fast (exit 2) when Consul is unreachable
    if not plane.quorum:  # every KV read would wait for a leader and fail: say why, exit 2
        raise NoQuorum(f"the control plane has {plane.problem}")
    report = build_report(read_snapshot(obj.consul, plane=plane))
    if not watch:
        _print(report, fmt)
        if check and not report.all_ready:
            if report.leader is None:
                click.echo("meshop status --check: no controller is leading", err=True)
            raise SystemExit(1)
        return
    _watch(obj, fmt)


def _print(report: StatusReport, fmt: str, frame: bool = False) -> None:
    if fmt == "json" and frame:
        click.echo(json.dumps(report.to_dict()))  # one line per change: easy to consume
        return
    if fmt != "table":
        click.echo(("---\n" if frame and fmt == "yaml" else "") + dump(report.to_dict(), fmt), nl=False)
        return
    if frame:
        if console().is_terminal:
            console().clear()
        show(Text(f"meshop status --watch   {timestamp(report.now)}   (Ctrl-C to stop)", style="dim"))
    show(status_view(report))


def _watch(obj: CliContext, fmt: str) -> None:
    feed = StatusWatch(obj.consul).start()
    shown = ""
    try:
        for update in feed.updates():
            if update.snapshot is None:
                message = f"Consul: {update.problem} (retrying)" if update.problem else "Consul: connected again"
                click.echo(message, err=True)
                continue
            report = build_report(update.snapshot)
            if report.fingerprint() != shown:
                shown = report.fingerprint()
                _print(report, fmt, frame=True)
    finally:
        feed.stop()
