"""The gateway's ``gateways/<id>/caddy``: whether its Caddy took the last config (``meshop status`` reads it).

Written under the gateway role's own ``gateways/`` prefix, only when the state changes; a failed write
is retried on the next pass. A clean stop deletes it, so a stopped gateway leaves no stale refusal.
"""

from __future__ import annotations

import logging

from meshop.caddy.loadstate import LoadState
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.records import dumps

log = logging.getLogger(__name__)


class LoadReport:
    def __init__(self, store: KVStore, gateway_id: str, state: LoadState | None = None) -> None:
        self.store = store
        self.key = keys.gateway_caddy(gateway_id)
        self.state = state or LoadState()
        self._written = ""

    def accepted(self) -> None:
        self.state.accepted()
        self.flush()

    def refused(self, message: str) -> None:
        self.state.refused(message)
        self.flush()

    def flush(self) -> None:
        if self.state.state is None:
            return
        content = dumps(self.state.state)
        if content == self._written:
            return
        try:
            self.store.put(self.key, content)
            self._written = content
        except ConsulError as exc:
            log.warning("could not write %s (retrying next pass): %s", self.key, exc)

    def withdraw(self) -> None:
        try:
            self.store.delete(self.key)
        except ConsulError as exc:
            log.warning("could not delete %s: %s", self.key, exc)
