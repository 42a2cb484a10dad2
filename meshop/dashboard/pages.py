"""Whole pages around the live fragments: the shell, login, action confirmation, errors. Pure."""

from __future__ import annotations

from meshop.dashboard.html import esc, url_part
from meshop.dashboard.views import Viewer

ACTION_TEXT = {
    "cordon": "Stop placing new work on node {name}. What runs there stays.",
    "uncordon": "Allow new work on node {name} again (this also ends a drain).",
    "drain": "Move the work of node {name} elsewhere (start-first), then keep it cordoned.",
    "restart": "Replace every replica of service {name}, by its update strategy (start-first keeps it serving).",
}
KIND_PATH = {"node": "nodes", "service": "service"}


def shell(title: str, body: str, viewer: Viewer, fragment: str = "", stream: str = "/stream") -> str:
    """A full page; with ``fragment`` its ``<main>`` is live: refreshed from that URL on every change."""
    logout = (
        f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{esc(viewer.csrf)}">'
        '<button type="submit">Log out</button></form>'
        if viewer.user
        else ""
    )
    user = viewer.user or "local"
    who = f'<span class="who">{esc(user)} · {"actions on" if viewer.actions else "read-only"} {logout}</span>'
    live = f' id="live" data-stream="{esc(stream)}" data-fragment="{esc(fragment)}"' if fragment else ""
    status = '<span id="conn">connecting</span>' if fragment else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · meshop</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>\n'
        f'<body><header><a href="/">meshop</a> {status} {who}</header>\n'
        f"<main{live}>\n{body}\n</main>\n"
        '<script src="/static/app.js"></script></body></html>\n'
    )


def login(error: str = "", password: bool = False) -> str:
    """Sign in with the configured password (when there is one) or a Consul ACL token that may read
    meshop's keys (the read-only role's)."""
    parts = ["<h2>Sign in</h2>"]
    if error:
        parts.append(f'<p class="error" id="login-error">{esc(error)}</p>')
    if password:
        parts.append(
            '<form class="login" method="post" action="/login"><input type="hidden" name="method" value="password">'
            '<label for="password">Password</label>'
            '<input type="password" id="password" name="password" autocomplete="current-password" required>'
            '<button class="act" type="submit" id="login-password">Sign in</button></form>'
        )
    parts.append(
        '<form class="login" method="post" action="/login"><input type="hidden" name="method" value="token">'
        '<label for="token">Consul ACL token (the read-only role may look; acting needs the operator role)</label>'
        '<input type="password" id="token" name="token" autocomplete="off" required>'
        '<button class="act" type="submit" id="login-token">Sign in with token</button></form>'
    )
    return shell("Sign in", "\n".join(parts), Viewer())


def confirm(action: str, kind: str, name: str, viewer: Viewer) -> str:
    """The confirmation every action asks for; the form carries the session's CSRF token."""
    text = ACTION_TEXT[action].format(name=name)
    back = f"/service/{url_part(name)}" if kind == "service" else "/"
    body = (
        f"<h2>{esc(action.capitalize())} {esc(kind)} {esc(name)}?</h2><p>{esc(text)}</p>"
        f'<form method="post" action="/{KIND_PATH[kind]}/{url_part(name)}/{esc(action)}">'
        f'<input type="hidden" name="csrf" value="{esc(viewer.csrf)}">'
        f'<button class="act danger" type="submit" id="confirm">{esc(action.capitalize())} {esc(name)}</button> '
        f'<a class="act" href="{back}" id="cancel">Cancel</a></form>'
    )
    return shell(f"{action} {name}", body, viewer)


def error(code: int, text: str, viewer: Viewer | None = None) -> str:
    return shell(
        f"Error {code}",
        f'<h2>Error {code}</h2><p class="error">{esc(text)}</p><p><a href="/">Back</a></p>',
        viewer or Viewer(),
    )
