"""Follows the Docker events of this node's managed containers and wakes the reconcile loop.

Only events that can mean drift wake it (a container died, was destroyed, paused, ran out of
memory); the events carry no decisions, the next pass looks at everything. The stream runs on its
own ``DaemonThread`` and reconnects when Docker restarts, backing off with the shared policy
(``meshop.daemon.backoff``: 0.2 s doubling up to ``max_backoff``, up to a fifth less at random; reset
by a connect); after every (re)connect it wakes the loop once, because events missed while disconnected
are lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from meshop.agent.engine.runtime import EventStream, Runtime
from meshop.daemon.backoff import BackoffPolicy, Random, Streak
from meshop.daemon.threads import DaemonThread
from meshop.daemon.wakeup import Wakeup
from meshop.errors import DriverError

log = logging.getLogger(__name__)

WAKE_ACTIONS = frozenset({"die", "destroy", "oom", "pause", "unpause", "stop", "kill"})


class DockerEventsWatcher:
    def __init__(
        self,
        runtime: Runtime,
        wakeup: Wakeup,
        *,
        max_backoff: float = 5.0,
        on_die: Callable[[str, int, float], None] | None = None,
        random: Random | None = None,
    ) -> None:
        self.runtime = runtime
        self.on_die = on_die  # (container id, exit code, time): Docker forgets the code once it restarts
        self.wakeup = wakeup
        self.max_backoff = max_backoff
        self.streak = Streak(BackoffPolicy(base=min(0.2, max_backoff), maximum=max_backoff, jitter=0.2), random)
        self.connected = threading.Event()
        self.received = 0
        self._stream: EventStream | None = None
        self._thread = DaemonThread("docker-events", self._run, on_stop=self._close_stream)
        self._stop = self._thread.stopping

    def start(self) -> DockerEventsWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop(timeout=5)

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream = self.runtime.events()
                self.connected.set()
                self.wakeup.notify("docker-connect")
                self.streak.succeeded()
                for event in self._stream:
                    if self._stop.is_set():
                        break
                    self.received += 1
                    action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
                    if action == "die" and self.on_die is not None:
                        self._died(event)
                    if action in WAKE_ACTIONS:
                        self.wakeup.notify("docker")
                if not self._stop.is_set():
                    raise DriverError("Docker events stream ended")
            except DriverError as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                delay = self.streak.failed()
                log.warning("docker events: %s; reconnecting in %.1fs", exc, delay)
                self._stop.wait(delay)
            finally:
                stream, self._stream = self._stream, None
                if stream is not None:
                    stream.close()

    def _died(self, event: dict) -> None:
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        try:
            code = int(attributes.get("exitCode", ""))
            when = int(event.get("timeNano") or 0) / 1e9 or float(event.get("time") or 0)
            container_id = str(actor.get("ID") or event.get("id") or "")
        except (TypeError, ValueError):
            return  # hostile or odd input: the container state still tells the code while it is down
        if container_id and self.on_die is not None:
            self.on_die(container_id, code, when)
