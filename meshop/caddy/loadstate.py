"""Whether a Caddy took the config it was last given, as the ``CaddyLoad`` record ``meshop status`` reads.

A refused load leaves the previous config serving, so nothing else looks wrong from outside: this is
what makes it visible. ``since`` is the wall time the current state began (a refusal streak keeps its
start while Caddy's message changes); the message is cut to ``MAX_MESSAGE`` characters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from meshop.model.records import CaddyLoad

MAX_MESSAGE = 500


class LoadState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.state: CaddyLoad | None = None  # None: no load tried yet

    def accepted(self) -> CaddyLoad:
        if self.state is None or not self.state.loaded:
            self.state = CaddyLoad(loaded=True, since=self.clock())
        return self.state

    def refused(self, message: str) -> CaddyLoad:
        since = self.state.since if self.state is not None and not self.state.loaded else self.clock()
        self.state = CaddyLoad(loaded=False, message=message[:MAX_MESSAGE], since=since)
        return self.state
