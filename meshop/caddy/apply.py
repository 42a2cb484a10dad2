"""Load a rendered config and keep the last good one serving when Caddy refuses the new one."""

from __future__ import annotations

import logging
from collections.abc import Callable

from meshop import metrics
from meshop.caddy.admin import CaddyAdmin, CaddyRejected
from meshop.caddy.process import ManagedCaddy

log = logging.getLogger(__name__)


class ConfigApplier:
    """Applies whole Caddyfiles; skips unchanged ones; recovers a managed Caddy from the 2.6.2 bug."""

    def __init__(self, admin: CaddyAdmin, component: str, managed: ManagedCaddy | None = None) -> None:
        self.admin = admin
        self.component = component
        self.managed = managed
        self.last_good: str | None = None

    def apply(self, caddyfile: str, *, force: bool = False, restore: Callable[[], None] | None = None) -> bool:
        """Load ``caddyfile`` unless it is what already serves; True when something was loaded.

        On refusal raises ``CaddyRejected``; the previous config keeps serving. When the refusal is the
        half-started-listener bug and meshop runs this Caddy, Caddy is restarted on the last good config.
        ``force`` loads even an unchanged text (files it imports may have changed); ``restore`` is called
        on refusal before anything else, to put those files back, so a restart reads the good ones.
        """
        if caddyfile == self.last_good and not force:
            return False
        try:
            self.admin.load(caddyfile)
        except CaddyRejected as exc:
            metrics.caddy_reloads_total.labels(self.component, "rejected").inc()
            metrics.caddy_config_refused.labels(self.component).set(1)
            if restore is not None:
                restore()
            if exc.needs_restart:
                self._recover(exc)
            raise
        except Exception:
            metrics.caddy_reloads_total.labels(self.component, "error").inc()
            raise
        metrics.caddy_reloads_total.labels(self.component, "ok").inc()
        metrics.caddy_config_refused.labels(self.component).set(0)
        self.last_good = caddyfile
        if self.managed is not None:
            self.managed.save(caddyfile)
        return True

    def _recover(self, exc: CaddyRejected) -> None:
        if self.managed is None:
            log.error(
                "Caddy at %s refused a config while starting a listener and may now hold a half-started "
                "server (Caddy 2.6.2 bug caddy#7175): restart that Caddy. Detail: %s",
                self.admin.address,
                exc.detail,
            )
            return
        log.warning("Caddy refused a config while listening (caddy#7175); restarting it on the last good config")
        if self.last_good is not None:
            self.managed.save(self.last_good)
        self.managed.restart(self.admin)
