"""Image pulls in the background, so a slow or failing pull never holds up the other services.

``request(image, service)`` starts a pull unless one runs; every service waiting on a pull that then
fails gets that failure exactly once (from its next ``request``), which it turns into
``ImagePullFailed`` and a per-service backoff; its next request after the backoff starts a new pull.
``on_done`` is called after every pull so the reconcile loop looks again at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from meshop.agent.engine.runtime import Runtime
from meshop.errors import DriverError

log = logging.getLogger(__name__)


class Puller:
    def __init__(self, runtime: Runtime, on_done: Callable[[], None], *, workers: int = 2) -> None:
        self._runtime = runtime
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull")
        self._lock = threading.Lock()
        self._pulling: dict[str, set[str]] = {}  # image -> services waiting for it
        self._failed: dict[str, tuple[str, set[str]]] = {}  # image -> (message, services yet to be told)
        self._finished: list[tuple[str, tuple[str, ...], str | None]] = []  # (image, services, failure)

    def request(self, image: str, service: str) -> str | None:
        """None while the pull runs (or just started); the failure message once per failed pull."""
        with self._lock:
            if image in self._pulling:
                self._pulling[image].add(service)
                return None
            failed = self._failed.get(image)
            if failed and service in failed[1]:
                failed[1].discard(service)
                if not failed[1]:
                    del self._failed[image]
                return failed[0]
            self._pulling[image] = {service}
        try:
            self._pool.submit(self._pull, image)
        except RuntimeError:  # shutting down
            with self._lock:
                self._pulling.pop(image, None)
        return None

    def pulling(self, image: str) -> bool:
        with self._lock:
            return image in self._pulling

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _pull(self, image: str) -> None:
        message = None
        try:
            log.info("pulling image %s", image)
            self._runtime.pull(image)
            log.info("pulled image %s", image)
        except DriverError as exc:
            message = str(exc)
            log.info("%s", message)
        except Exception as exc:  # a pull thread must always report back
            message = f"pulling {image} failed: {type(exc).__name__}: {exc}"
            log.exception("pull of %s crashed", image)
        with self._lock:
            waiting = self._pulling.pop(image, set())
            if message is not None:
                self._failed[image] = (message, waiting)
            if len(self._finished) < 1000:
                self._finished.append((image, tuple(sorted(waiting)), message))
        self._on_done()

    def take_finished(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        """Pulls finished since the last call: (image, services waiting, failure or None); for events."""
        with self._lock:
            finished, self._finished = self._finished, []
        return finished
