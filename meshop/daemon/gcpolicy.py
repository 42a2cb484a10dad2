"""The daemons' policy for Python's cyclic garbage collector, in one place (``ReconcileLoop`` applies it).

A daemon keeps a large state alive between passes: parsed documents, records, listings. At 5,000
services that is about 250,000 objects. Each pass allocates many short-lived objects on top of it.
Left to itself, the collector starts every 700 allocations. Its oldest generation then walks the whole
long-lived state again and again, which cost more than a third of a warm controller pass at 5,000
services, and the share grew with the number of services. So:

* **Paused while a pass runs** (``paused()``). Reference counting still frees everything acyclic at
  once. A cycle made during a pass waits for ``settle()`` (a warm controller pass makes none).
* **Settled after each clean pass** (``settle()``). First a full collection runs. It walks only the
  objects not yet frozen: what changed since the last pass, not the whole state. Then ``gc.freeze()``
  moves the survivors out of the collector's reach, so later collections (watch threads, the next
  ``settle``) never walk the long-lived state again. Freezing is O(1). Frozen objects are still freed
  by reference counting as soon as nothing refers to them (a replaced record, an old listing).
* **Refreshed in full every ``REFRESH_SECONDS``.** A frozen object that later becomes part of an
  unreachable cycle would otherwise never be freed. So the frozen set is unfrozen, collected and frozen
  again at that interval. Memory held by such cycles is bounded by what that interval makes. The
  refresh is one walk of the whole state, about 0.2 s at 5,000 services, once per interval.

Several loops may share a process (the controller and its DNS writer, tests, benchmarks). The pause is
counted, and ``settle`` waits until no pass is in flight: it never freezes another pass's temporaries.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

REFRESH_SECONDS = 600.0

_lock = threading.Lock()
_pauses = 0  # passes in flight
_last_refresh: float | None = None  # monotonic time of the last full collection of the frozen set


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off while a pass runs (counted: the last pass to end turns it back on)."""
    global _pauses
    with _lock:
        _pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0:
                gc.enable()


def settle(now: float | None = None) -> bool:
    """After a clean pass: collect what is not frozen yet, then freeze what survived. Returns False
    (nothing done) while another pass is in flight. ``now``: monotonic seconds (tests pass their own)."""
    global _last_refresh
    now = time.monotonic() if now is None else now
    with _lock:
        if _pauses:
            return False
        if _last_refresh is None or now - _last_refresh >= REFRESH_SECONDS:
            gc.unfreeze()  # the frozen set is collected in full this time
            _last_refresh = now
        gc.collect()
        gc.freeze()
        return True
