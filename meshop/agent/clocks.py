"""The agent's two clocks, injected so tests can step either one.

``mono`` (``time.monotonic``) measures every in-process duration and deadline: restart and service
holds, drain, crash-loop windows, registration refresh, route retries. ``wall`` (``time.time``) only
stamps what people read (``lastReconcile``, events, the node's ``startedAt``, the fence's time) and is
compared with Docker's timestamps, which are wall times, once per container start
(``memory/ages.py``). An NTP step of the wall clock therefore restarts, holds, drains and marks nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple


class Clocks(NamedTuple):
    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic


SYSTEM = Clocks()  # the real clocks: the default wherever clocks are injected
