"""``meshop dashboard [--listen ADDR] [--password-file F] [--actions] [--public-host H]``: the fleet in a
browser; thin."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from meshop.cli.context import CliContext
from meshop.errors import DocumentError


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to serve. Anything but loopback (or any dashboard with --actions) requires a login.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding the scrypt hash of the login password (make one with --hash-password).",
)
@click.option(
    "--actions",
    is_flag=True,
    help="Offer cordon, uncordon, drain and restart; a login is then required, on loopback too, and the "
    "token must have the operator role.",
)
@click.option(
    "--public-host",
    multiple=True,
    metavar="HOST",
    help="The host the gateway publishes this dashboard at (the Gateway document's spec.dashboard.host; "
    "repeat for more): requests may name it, and a login is then required wherever it listens.",
)
@click.option("--hash-password", is_flag=True, help="Read a password on stdin, print its hash line, and exit.")
@click.pass_obj
def dashboard(
    obj: CliContext,
    listen: str,
    password_file: Path | None,
    actions: bool,
    public_host: tuple[str, ...],
    hash_password: bool,
) -> None:
    """Serve a live web view of services, nodes, routes and events (read-only unless --actions)."""
    from meshop.dashboard import auth

    if hash_password:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 12:
            raise DocumentError("password: at least 12 characters")
        click.echo(auth.hash_password(password))
        return
    from meshop.model.names import is_hostname

    for host in public_host:
        if not is_hostname(host):
            raise DocumentError(f"--public-host: {host[:100]!r} is not a lowercase DNS hostname")
    from meshop.dashboard.actions import check_actions_allowed
    from meshop.dashboard.server import Dashboard, Settings

    password = None
    if password_file is not None:
        try:
            text = password_file.read_text()
        except OSError as exc:
            raise DocumentError(f"--password-file {password_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise DocumentError(f"--password-file {password_file}: not text (make it with --hash-password)") from None
        try:
            password = auth.PasswordHash.parse(text, f"--password-file {password_file}")
        except auth.AuthConfigError as exc:
            raise DocumentError(str(exc)) from None
    if actions:
        click.echo(f"dashboard: actions on ({check_actions_allowed(obj.consul)})", err=True)
    settings = Settings(listen=listen, password=password, actions=actions, public_hosts=public_host)
    server = Dashboard(obj.consul, settings).start()
    login = "login required" if server.login_required else "no login (loopback only)"
    click.echo(f"dashboard: serving {server.url} ({login}; {'actions on' if actions else 'read-only'})", err=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
