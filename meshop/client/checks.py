"""The documents of one command line, checked together before anything reads or writes Consul: each
one valid, no Service whose resolved spec the controller would refuse as too large, and no two for the
same key. ``meshop validate`` runs only this; ``diff``, ``apply`` and ``import`` run it first, so an
invalid set costs nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshop.errors import DocumentError, ValidationFailed, Violation
from meshop.model import keys, validate

if TYPE_CHECKING:
    from meshop.client.sources import SourcedDocument


SMALL_SPEC_BYTES = 32 * 1024  # a spec this small in JSON resolves well under the limit (MAX_SPEC_BYTES)


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
        too_large = too_large_to_place(item.doc, prefix)
        if too_large:
            problems.append(Violation(f"{item.source}: spec", too_large))
        key = key_for(item.doc)
        if key in seen:
            problems.append(Violation(item.source, f"defines {key} again (first in {seen[key]})"))
        seen[key] = item.source
    if problems:
        raise ValidationFailed(problems)


def too_large_to_place(doc: dict[str, Any], prefix: str) -> str | None:
    """The controller's size limit on a valid Service's resolved spec (``model.hashing``), checked here so
    ``apply`` refuses what the controller would (before: a 417 KB document was written, then refused).
    Only a large document is resolved: resolving loads the value objects, which ``validate`` and a
    small ``apply`` do without (start-up time); a spec resolves to at most a few times its JSON."""
    if doc.get("kind") != "Service" or _text_size(doc.get("spec"), SMALL_SPEC_BYTES) <= SMALL_SPEC_BYTES:
        return None
    from meshop.model import parse_service
    from meshop.model.hashing import spec_size_problem

    return spec_size_problem(parse_service(doc, prefix=prefix).spec)


def _text_size(value: object, enough: int) -> int:
    """Roughly the characters of ``value`` as JSON, counted until past ``enough`` (``json`` is not loaded
    by ``meshop validate``: start-up time)."""
    total, stack = 0, [value]
    while stack and total <= enough:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        total += len(item) + 2 if isinstance(item, str) else 4
    return total
