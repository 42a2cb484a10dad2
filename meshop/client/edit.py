"""``meshop edit KIND NAME``: the text the editor gets and what comes back from it (pure; the editor loop,
Consul and the output are in ``meshop.cli.commands.edit``).

As ``kubectl edit`` does: the stored document is shown under a ``#`` header; what is saved must be one
document of the same kind and name (a top-level ``status`` is dropped, as apply drops it); an invalid
save is shown again with its errors as ``#`` lines at the top, above the text as it was saved (the old
error lines removed), so nothing typed is lost. The write itself is a check-and-set on the ModifyIndex
read before the editor opened: a change made by someone else meanwhile is refused, never overwritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshop.client.sources import SourcedDocument
from meshop.client.yamltext import dump_yaml
from meshop.errors import DocumentError
from meshop.model import load_documents

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ERROR_MARK = "# error: "


def edit_text(label: str, doc: Mapping[str, Any], index: int) -> str:
    """What the editor opens: a header saying how the edit is handled, then the document as YAML."""
    return edit_header(label, index) + dump_yaml(dict(doc))


def edit_header(label: str, index: int) -> str:
    where = f"stored at ModifyIndex {index}" if index else "not stored yet: saving creates it"
    header = (
        f"# Edit {label} ({where}). Lines starting with '#' are ignored; an empty file cancels the edit.\n"
        "# It is validated when you save, and written only if nobody else changed it since it was read.\n"
    )
    return header


def with_errors(text: str, errors: Sequence[str]) -> str:
    """``text`` as saved, under the errors that refused it (the previous round's error lines removed)."""
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith(ERROR_MARK)]
    marks = [f"{ERROR_MARK}{_escaped(line)}\n" for error in errors for line in error.splitlines() or [""]]
    return "".join(marks) + "".join(kept)


def _escaped(line: str) -> str:
    """``line`` with what YAML refuses even in a comment (control characters, ...) written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def is_blank(text: str) -> bool:
    """True when nothing but comments and blank lines was saved: the edit is cancelled."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def read_edited(text: str, kind: str, name: str, source: str) -> SourcedDocument:
    """The one document saved; DocumentError when it is not one document of ``kind`` named ``name``."""
    docs = load_documents(text, source=source)
    if len(docs) != 1:
        raise DocumentError(f"{source}: expected one document, found {len(docs)}")
    doc = docs[0]
    doc.pop("status", None)
    if doc.get("kind") != kind:
        raise DocumentError(f"{source}: kind must stay {kind} (edit one document, apply -f for others)")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name") != name:
        raise DocumentError(f"{source}: metadata.name must stay {name!r} (a rename is a new document: use apply)")
    return SourcedDocument(source, doc)
