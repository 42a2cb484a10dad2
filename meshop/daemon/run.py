"""Run one daemon in the foreground: status endpoints, signal handling, the reconcile loop.

SIGTERM and SIGINT stop the loop and run the daemon's own shutdown (deregistrations, releasing a
lock); the process then exits 0. Containers and Caddy configs are left as they are.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from meshop import metrics
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.status_server import Readiness, StatusServer

log = logging.getLogger(__name__)


def run_daemon(
    component: str,
    loop: ReconcileLoop,
    *,
    metrics_addr: str,
    ready: Readiness,
    on_start: Callable[[StatusServer], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    metrics.init_component(component)
    server = StatusServer(metrics_addr, ready).start()
    log.info("%s: metrics and health on http://%s", component, server.address)
    stopping = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            log.info("%s: %s received, shutting down", component, signal.Signals(signum).name)
            stopping.set()
            loop.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_start is not None:
            on_start(server)
        loop.run_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_stop is not None:
            try:
                on_stop()
            except Exception as exc:  # noqa: BLE001 - shutdown must finish
                log.warning("%s: shutdown step failed: %s", component, exc)
        server.stop()
        log.info("%s: stopped", component)
