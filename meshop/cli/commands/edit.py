"""``meshop edit service|node|gateway NAME``: the stored document in ``$EDITOR``, validated, diffed, then written
with check-and-set (the rules: ``meshop.client.edit``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any

import click

from meshop.cli import complete
from meshop.cli.docs import check_routes
from meshop.cli.views import format_diff
from meshop.client.apply import apply_changes, plan_changes, stored_document
from meshop.client.checks import check_all
from meshop.client.edit import edit_header, edit_text, is_blank, read_edited, with_errors
from meshop.errors import ConflictError, DocumentError, NotFound
from meshop.model import keys
from meshop.model.schema import API_VERSION

if TYPE_CHECKING:
    from meshop.cli.context import CliContext
    from meshop.client.sources import SourcedDocument
    from meshop.consul.kv import Entry
    from meshop.consul.store import KVStore


class EditCancelled(DocumentError):
    """The editor exited non-zero: nothing to keep, nothing written."""


KINDS = {
    **{"service": "Service", "services": "Service", "svc": "Service", "node": "Node", "nodes": "Node"},
    **{"gateway": "Gateway", "gateways": "Gateway", "gw": "Gateway"},
}
KEYS = {"Service": keys.desired_service, "Node": keys.desired_node, "Gateway": lambda _name: keys.DESIRED_GATEWAY}


@click.command()
@click.argument("kind", type=click.Choice(sorted(KINDS)), metavar="service|node|gateway")
@click.argument("name", shell_complete=complete.by_kind)
@click.pass_obj
def edit(obj: CliContext, kind: str, name: str) -> None:
    """Edit a stored document in $EDITOR (else $VISUAL, else vi): validated when saved (an invalid one
    reopens with its errors on top), its diff shown, then written only if nobody changed it meanwhile."""
    kind = KINDS[kind]
    label = f"{kind.lower()}/{name}"
    key = KEYS[kind](name)
    store = obj.store()
    entry = store.get(key)
    if kind == "Gateway":
        _check_gateway(store, entry, name)
    if entry is None and kind == "Service":
        raise NotFound(f"{label} not found (no {store.full_key(key)}); write it with meshop apply -f")
    if entry is None and store.get(keys.node(name)) is None:  # as ``nodes cordon``: no phantom nodes from a typo
        raise NotFound(f"{label} not found: no agent registered it and no Node document names it")
    handle, path = tempfile.mkstemp(prefix="meshop-edit-", suffix=".yaml")
    os.close(handle)
    keep = False
    try:
        item = _edit_until_valid(obj, store, kind, name, _first_text(label, kind, name, entry), path)
        if item is None:
            return
        changes = plan_changes([item], {key: entry})
        if changes[0].action == "unchanged":
            click.echo(f"{label} unchanged (nothing written)")
            return
        click.echo(format_diff(changes), nl=False)
        try:
            apply_changes(store, changes)
        except ConflictError:
            keep = True
            raise ConflictError(
                f"{label} changed in Consul while you edited it; nothing written (check-and-set). "
                f"Your edit is kept in {path}: run meshop edit again, or diff/apply -f that file"
            ) from None
        click.echo(f"{label} {'created' if entry is None else 'edited'}")
    except DocumentError as exc:
        keep = not isinstance(exc, EditCancelled)
        raise
    finally:
        if not keep:
            os.unlink(path)


def _check_gateway(store: KVStore, entry: Entry | None, name: str) -> None:
    """There is one Gateway document (``desired/gateway``): NotFound when none is stored or it has another
    name (a bare one cannot be offered: its ``domains`` are required)."""
    doc = stored_document(entry) if entry else None
    stored = ((doc or {}).get("metadata") or {}).get("name") if isinstance(doc, dict) else None
    if entry is None or (doc is not None and stored != name):
        where = f"the stored one is {stored!r}" if stored else f"no {store.full_key(keys.DESIRED_GATEWAY)}"
        raise NotFound(f"gateway/{name} not found ({where}); write one with meshop apply -f")


def _first_text(label: str, kind: str, name: str, entry: Entry | None) -> str:
    """The stored document under its header; a bare one for a Node nobody wrote a document for; the raw
    text when what is stored cannot be read as one document."""
    index = entry.modify_index if entry else 0
    if entry is None:
        return edit_text(label, {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}}, 0)
    doc = stored_document(entry)
    if doc is None:
        return edit_header(label, index) + entry.value.decode("utf-8", "replace")
    return edit_text(label, doc, index)


def _edit_until_valid(
    obj: CliContext, store: KVStore, kind: str, name: str, text: str, path: str
) -> SourcedDocument | None:
    """Open the editor until what is saved is valid: that document; None when the edit was cancelled (an
    empty file). A save left as it was shown with errors ends the edit (DocumentError; the file kept)."""
    label = f"{kind.lower()}/{name}"
    shown, refused = text, ""
    while True:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(shown)
        _run_editor(path)
        with open(path, encoding="utf-8", errors="replace") as handle:
            saved = handle.read()
        if is_blank(saved):
            click.echo(f"Edit cancelled: the saved file was empty; {label} not written", err=True)
            return None
        if refused and saved == shown:
            raise DocumentError(
                f"{label}: saved again unchanged, still invalid; nothing written. "
                f"Your edit is kept in {path}\n{refused}"
            )
        try:
            item = read_edited(saved, kind, name, label)
            check_all([item], obj.prefix)
            check_routes([item], store, obj.prefix)
        except DocumentError as exc:
            shown, refused = with_errors(saved, [str(exc)]), str(exc)
            click.echo(f"{label}: invalid, reopening the editor with the errors at the top", err=True)
            continue
        return item


def _run_editor(path: str) -> None:
    """Run ``$EDITOR`` (else ``$VISUAL``, else vi) on ``path``; a non-zero exit cancels the edit."""
    editor = os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi"
    command: list[Any] = [*shlex.split(editor), path]
    try:
        done = subprocess.run(command, check=False)
    except OSError as exc:
        raise EditCancelled(f"cannot run the editor {editor!r} ({exc.strerror}); set $EDITOR") from None
    if done.returncode != 0:
        raise EditCancelled(f"Edit cancelled: the editor {editor!r} exited with {done.returncode}; nothing written")
