"""Read documents from ``-f FILE``, ``-f DIR`` (every *.yaml, *.yml, *.json in it) or ``-f -`` (stdin).

A top-level ``status`` is dropped on the way in, as kubectl ignores it: it is the server's view that
``meshop get -o yaml`` prints under the document, so that output applies back as it is. Users never
write status; the schemas still refuse it anywhere else (a document put into KV by hand).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NamedTuple

from meshop.errors import DocumentError
from meshop.model import load_documents

SUFFIXES = (".yaml", ".yml", ".json")


class SourcedDocument(NamedTuple):  # not a dataclass: ``meshop validate`` never loads ``dataclasses``
    source: str  # "whoami.yaml" or "whoami.yaml#2" for the second document of a file
    doc: dict[str, Any]


def read_sources(paths: tuple[str, ...]) -> list[SourcedDocument]:
    """Every document in every given path, in order; raises DocumentError naming the file."""
    if not paths:
        raise DocumentError("no input: give -f FILE, -f DIR or -f -")
    out: list[SourcedDocument] = []
    for path in paths:
        for source, text in _texts(path):
            docs = load_documents(text, source=source)
            for i, doc in enumerate(docs):
                doc.pop("status", None)
                out.append(SourcedDocument(f"{source}#{i + 1}" if len(docs) > 1 else source, doc))
    return out


def _texts(path: str) -> list[tuple[str, bytes]]:
    if path == "-":
        return [("<stdin>", sys.stdin.buffer.read())]
    if os.path.isdir(path):
        names = (os.path.join(path, name) for name in os.listdir(path) if os.path.splitext(name)[1] in SUFFIXES)
        files = sorted(name for name in names if os.path.isfile(name))
        if not files:
            raise DocumentError(f"{path}: no *.yaml, *.yml or *.json files in this directory")
        return [(name, _read(name)) for name in files]
    return [(path, _read(path))]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DocumentError(f"{path}: no such file") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror})") from None
