"""``meshop events [OBJECT] [-n N] [--follow] [-o json]``: the event log, oldest first."""

from __future__ import annotations

import json

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.render import event_line
from meshop.client.events import LoggedEvent, event_json, follow_events, object_filter, recent_events
from meshop.consul.store import KVStore


@click.command()
@click.argument("target", metavar="[OBJECT]", required=False, shell_complete=complete.objects)
@click.option("-n", "--lines", "limit", type=click.IntRange(0), default=50, show_default=True, help="Newest N events.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they happen (Ctrl-C to stop).")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def events(obj: CliContext, target: str | None, limit: int, follow: bool, fmt: str) -> None:
    """What meshop did and why: Scheduled, Rescheduled, Invalid, NodeLost, NodeReady, LeaderElected.

    OBJECT limits them to one object: service/web (or svc/web, or just web), node/n1, controller/ID.
    With -o json each event is one line, its time an ISO 8601 UTC timestamp.
    """
    wanted = object_filter(target)
    store = obj.store()
    shown = recent_events(store, limit, wanted)
    for logged in shown:
        _print(logged, fmt)
    if not follow:
        return
    after = shown[-1].key if shown else _newest_key(store)
    for logged in follow_events(store, after, obj=wanted):
        _print(logged, fmt)


def _newest_key(store: KVStore) -> str:
    newest = recent_events(store, 1)
    return newest[-1].key if newest else ""


def _print(logged: LoggedEvent, fmt: str) -> None:
    text = json.dumps(event_json(logged.event), sort_keys=True) if fmt == "json" else event_line(logged)
    click.echo(text)
