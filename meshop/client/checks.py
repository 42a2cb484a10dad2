"""The documents of one command line, checked together before anything reads or writes Consul: each
one valid, and no two for the same key. ``meshop validate`` runs only this; ``diff`` and ``apply``
(``meshop.client.apply``) run it first, so an invalid set costs nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshop.errors import DocumentError, ValidationFailed, Violation
from meshop.model import keys, validate

if TYPE_CHECKING:
    from meshop.client.sources import SourcedDocument


def key_for(doc: dict[str, Any]) -> str:
    kind = doc.get("kind")
    name = doc.get("metadata", {}).get("name", "")
    if kind == "Service":
        return keys.desired_service(name)
    if kind == "Node":
        return keys.desired_node(name)
    if kind == "Gateway":
        return keys.DESIRED_GATEWAY
    raise DocumentError(f"kind {kind!r} cannot be applied")


def check_all(documents: list[SourcedDocument], prefix: str = keys.DEFAULT_PREFIX) -> None:
    """Every violation of every document, or nothing: raises one ValidationFailed listing them all."""
    problems: list[Violation] = []
    seen: dict[str, str] = {}
    for item in documents:
        violations = validate(item.doc, prefix=prefix)
        problems.extend(Violation(f"{item.source}: {v.path}" if v.path else item.source, v.reason) for v in violations)
        if violations:
            continue
        key = key_for(item.doc)
        if key in seen:
            problems.append(Violation(item.source, f"defines {key} again (first in {seen[key]})"))
        seen[key] = item.source
    if problems:
        raise ValidationFailed(problems)
