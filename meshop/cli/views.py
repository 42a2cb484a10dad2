"""Pure formatters: plain data in, text out. Commands fetch, call these, and print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: ``meshop validate`` and ``version`` must not import the planners
    from collections.abc import Mapping, Sequence

    from meshop.client.apply import DocumentChange
    from meshop.client.preview import PlacementPreview


def to_yaml(data: object, sort_keys: bool = False) -> str:
    """``data`` as YAML that reads back as ``data`` (``meshop.client.yamltext``)."""
    from meshop.client.yamltext import dump_yaml

    return dump_yaml(data, sort_keys)


def documents_text(docs: Sequence[Mapping[str, Any]], fmt: str, one: bool = False) -> str:
    """Documents as ``get -o json|yaml`` prints them, in a form ``apply -f -`` reads back: YAML documents
    separated by ``---``, or a JSON array (``one``: the one document itself)."""
    if fmt == "json":
        import json

        return json.dumps(docs[0] if one else list(docs), indent=2) + "\n"
    return "---\n".join(to_yaml(doc) for doc in docs)


def format_diff(changes: Sequence[DocumentChange]) -> str:
    """A unified diff per changed document, like ``kubectl diff``; one line per unchanged one."""
    import difflib  # only ``meshop diff`` needs it (start-up time of ``version``)

    out: list[str] = []
    for change in changes:
        label = f"{change.kind.lower()}/{change.name}"
        if change.action == "unchanged":
            out.append(f"{label} unchanged\n")
            continue
        # keys sorted on both sides: the stored form is canonical JSON, the file may be in any order
        before = to_yaml(change.before, True).splitlines(keepends=True) if change.before is not None else []
        after = to_yaml(change.after, True).splitlines(keepends=True)
        out.append(f"{label} {'would be created' if change.action == 'created' else 'would be configured'}\n")
        out.extend(difflib.unified_diff(before, after, fromfile=f"a/{change.key}", tofile=f"b/{change.key}"))
    return "".join(out)


def format_placement(previews: Sequence[PlacementPreview]) -> str:
    """Where each touched service runs now and would run after apply, as the controller would plan it."""
    if not previews:
        return ""
    from meshop.operator.plan import format_counts  # only ``meshop diff`` needs the controller's planner

    out = ["placement (as the controller would plan it now):\n"]
    for item in previews:
        line = f"  service/{item.service}: {format_counts(item.before)}"
        line += f" -> {format_counts(item.after)}" if item.moves else " (unchanged)"
        if item.moving:
            line += f"; keeps {format_counts(item.moving)} until the replacements are Ready"
        if item.reason:
            line += f"; {item.reason}: {item.message}" if item.message else f"; {item.reason}"
        out.append(line + "\n")
    return "".join(out)


def version_text(info: Mapping[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    return (
        f"meshop {info['version']}\n"
        f"  commit:    {info['commit']}\n"
        f"  python:    {info['python']} ({info['platform']})\n"
        f"  libraries: {libs}\n"
    )
