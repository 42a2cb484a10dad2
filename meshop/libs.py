"""Load third-party libraries without parts meshop never uses: the daemons' idle memory (issue 17).

``requests`` (under py-consul and the Docker SDK) imports ``charset_normalizer``, some 4 MB resident,
only to guess the encoding of a text body that declares none. Every body meshop reads is JSON (Consul,
Docker), which requests decodes as UTF-8 without it; and ``Response.text`` falls back to UTF-8. So the
modules that import py-consul or the Docker SDK do it inside ``without_charset_detection()``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def blocked(*names: str) -> Iterator[None]:
    """``import name`` raises ImportError inside the block, for each name not already imported."""
    added = [name for name in names if name not in sys.modules]
    for name in added:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in added:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextmanager
def without_charset_detection() -> Iterator[None]:
    """Import ``requests`` (if it is not loaded yet) without its character-set detector."""
    if "requests" in sys.modules:
        yield
        return
    with warnings.catch_warnings(), blocked("charset_normalizer", "chardet"):
        # requests warns that it found no detector: that is the point
        warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
        import requests  # noqa: F401  # loaded here, so later imports find it without the detector

        yield
