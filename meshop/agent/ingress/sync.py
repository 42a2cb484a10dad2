"""Keeps the node's Caddy serving the snippets ``snippets.render_ingress`` says, with validated reloads.

Each pass: compare meshop's files in the snippet folder *and* what Caddy last accepted with the wanted
files (level-triggered, by content, so a hand-edited or deleted file is repaired), write the
difference, and load the node's Caddyfile (which imports the folder) through the admin API.

* Refused: the files go back to what Caddy last accepted (the previous config keeps serving), then the
  changes are tried one file at a time, so one service Caddy refuses holds up no other. A refused file
  is retried with growing delays while its content stays the same, and its service carries
  ``RouteRejected`` in observed state. A refusal mentioning a listener (Caddy 2.6.2's half-started
  server, caddy#7175) restarts a Caddy meshop runs, after the files were put back.
* While any file stays refused, ``load`` says so (the refusal, since when): the agent puts it in its node
  record's ``caddy``, which ``meshop status`` shows as a red line; it clears once every file loads.
* Admin API unreachable: the files go back as well (``RouteUnavailable``); the next pass loads again.
* A service whose assignment is gone keeps its last loaded file while its containers still exist, so a
  container being stopped keeps its traffic until it is gone.

``gate`` is how start-first updates stay gapless through Caddy: the planner removes a replaced
container ``drain`` seconds after its replacement was *promoted*; for a routed service a replacement
counts as promoted only once a config Caddy accepted sends traffic to it.

With an upstream DNS (``dns``) the snippets name their upstreams by ``dynamic srv`` and the pass
publishes the local replicas there before loading anything: a change of replicas alone leaves every
file as Caddy serves it (no reload). Caddy keeps an answer up to ``refresh`` seconds, so a container
counts as routed ``refresh`` seconds after it was first published (the old one drains after that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from meshop.agent.ingress.snippets import (
    FALLBACK_FILE,
    IngressSettings,
    LocalRoute,
    file_service,
    local_routes,
    render_ingress,
    snippet_file,
    static_upstreams,
    upstream_table,
)
from meshop.agent.memory.holds import Holds
from meshop.agent.planning.plan import Container, Note, ReplicaKey
from meshop.caddy.admin import CaddyRejected
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.loadstate import LoadState
from meshop.caddy.process import ManagedCaddy
from meshop.caddy.snippet_dir import SnippetDir
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.errors import DriverError
from meshop.model import ServiceSpec

log = logging.getLogger(__name__)

Files = dict[str, str]


class _Unavailable(Exception):
    """Caddy's admin API did not answer (or the main config could not be read): stop trying this pass."""


class NodeIngress:
    def __init__(
        self,
        settings: IngressSettings,
        folder: SnippetDir,
        applier: ConfigApplier,
        main_config: Callable[[], str],
        *,
        managed: ManagedCaddy | None = None,
        retry: tuple[float, float] = (1.0, 60.0),
        dns: UpstreamDNS | None = None,
        refresh: float = 1.0,
    ) -> None:
        self.dns = dns
        self.refresh = refresh
        self._table: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}  # service -> what the DNS answers
        self.settings = settings
        self.folder = folder
        self.applier = applier
        self.main_config = main_config
        self.managed = managed
        self.loaded: Files | None = None  # what Caddy last accepted; None: unknown, load before trusting
        self.errors: dict[str, Note] = {}  # service -> why its route is not what it should be
        self.routed_since: dict[str, float] = {}  # container id -> when an accepted config first sent it traffic
        self.wanted_ids: frozenset[str] = frozenset()  # containers the wanted snippets send traffic to
        self.holds = Holds(*retry)
        self._refused_text: dict[str, str | None] = {}  # file -> the content Caddy refused (None: its removal)
        self.load = LoadState()  # what the node record says of the last loads (nodes/<node>.caddy)

    # -- the pass ------------------------------------------------------------------------------------

    def follow(
        self,
        specs: Mapping[str, ServiceSpec],
        serving: Mapping[ReplicaKey, str],
        containers: Sequence[Container],
        healthy: Mapping[str, bool],
        now: float,
    ) -> None:
        """One pass from the plan: routes to the served ready containers; unassigned services that still
        have containers keep their loaded file until those are gone."""
        routes = local_routes(specs, serving, {c.id: c for c in containers}, healthy, self.settings)
        keep = {c.service for c in containers if c.alive and c.service not in specs}
        self.sync(routes, keep, now)

    def sync(self, routes: Mapping[str, LocalRoute], keep: Iterable[str], now: float) -> None:
        """Make Caddy serve ``routes``; ``keep``: unassigned services whose containers still exist."""
        keep = set(keep)
        self._ensure_running()
        good = self.loaded if self.loaded is not None else self.folder.read()
        resolver = self.dns.address if self.dns is not None else None
        pinned = {s: static_upstreams(text) for name, text in good.items() if (s := file_service(name))}
        rendered = render_ingress(routes, self.settings, resolver=resolver, pinned=pinned)
        wanted = dict(rendered.files)
        for service in keep:
            name = snippet_file(service)
            if service not in routes and self.loaded and name in self.loaded:
                wanted[name] = self.loaded[name]
        self.wanted_ids = frozenset(cid for route in routes.values() for cid in route.container_ids)
        if self.dns is not None:  # before any load: a site Caddy starts serving finds its name answered
            table = upstream_table(routes)
            table.update({s: self._table[s] for s in keep if s not in routes and s in self._table})
            self._table = table
            self.dns.publish(dict(table.values()))
        target = self._target(wanted, good, now)
        try:
            if self.loaded is None or self.loaded != target or self.folder.read() != target:
                self.loaded = self._attempt(target, good, now)
        except _Unavailable as exc:
            self.loaded = None
            self._note_all(wanted, good, Note("RouteUnavailable", str(exc)[:500]))
            return
        self._settle(routes, wanted, rendered.refused, now)

    def gate(self, promoted: Mapping[str, float]) -> dict[str, float]:
        """``promoted`` (container id -> since) with routed containers counted from when Caddy routes them."""
        gated: dict[str, float] = {}
        for container_id, since in promoted.items():
            if container_id in self.wanted_ids:
                routed = self.routed_since.get(container_id)
                if routed is None:
                    continue  # not yet behind Caddy: the container it replaces keeps serving
                since = max(since, routed)
            gated[container_id] = since
        return gated

    def next_retry(self, now: float) -> float | None:
        return self.holds.next_release(now)

    # -- steps ---------------------------------------------------------------------------------------

    def _target(self, wanted: Files, good: Files, now: float) -> Files:
        """``wanted``, except files Caddy refused with this same content and whose retry is not due."""
        held = self.holds.held(now)
        target = dict(wanted)
        for name in set(wanted) | set(good):
            if name in held and name in self._refused_text and wanted.get(name) == self._refused_text[name]:
                _set(target, name, good.get(name))
        return target

    def _attempt(self, target: Files, good: Files, now: float) -> Files:
        """Load ``target``; when refused, its changes one file at a time on top of ``good``. Returns what
        Caddy accepted (raises ``_Unavailable`` when it cannot be asked; the folder then holds ``good``)."""
        error = self._load(target, good)
        if error is None:
            return dict(target)
        changed = sorted(n for n in set(target) | set(good) if target.get(n) != good.get(n))
        if len(changed) == 1:
            self._refuse(changed[0], target, error, now)
            return dict(good)
        base = dict(good)
        for name in changed:
            candidate = dict(base)
            _set(candidate, name, target.get(name))
            error = self._load(candidate, base)
            if error is None:
                base = candidate
            else:
                self._refuse(name, target, error, now)
        return base

    def _load(self, files: Files, fallback: Files) -> str | None:
        """Write ``files`` and load them; None when Caddy accepted, else its refusal (folder = ``fallback``)."""
        self.folder.replace_all(files)
        try:
            self.applier.apply(self._main(fallback), force=True, restore=lambda: self.folder.replace_all(fallback))
        except CaddyRejected as exc:
            log.error("node Caddy refused the routes: %s", exc.detail)
            return exc.detail
        except DriverError as exc:  # the admin API did not answer, or restarting a managed Caddy failed
            self.folder.replace_all(fallback)
            raise _Unavailable(str(exc)) from None
        return None

    def _main(self, fallback: Files) -> str:
        try:
            return self.main_config()
        except OSError as exc:
            self.folder.replace_all(fallback)
            raise _Unavailable(f"cannot read the node Caddyfile: {exc}") from None

    def _refuse(self, name: str, target: Files, error: str, now: float) -> None:
        self._refused_text[name] = target.get(name)
        self.load.refused(error)
        delay = self.holds.failed(name, now)
        log.warning("route file %s refused by Caddy; retrying it in %.0fs", name, delay)
        note = Note("RouteRejected", f"Caddy refused the route (the previous one keeps serving): {error}"[:500])
        self._errors_for_file(name, note, target)

    def _errors_for_file(self, name: str, note: Note, files: Files) -> None:
        service = file_service(name)
        services = [service] if service else [s for s in map(file_service, files) if s]
        for item in services:
            self.errors[item] = note

    def _note_all(self, wanted: Files, good: Files, note: Note) -> None:
        for name in set(wanted) | set(good):
            if wanted.get(name) != good.get(name):
                self._errors_for_file(name, note, wanted)

    def _settle(self, routes: Mapping[str, LocalRoute], wanted: Files, refused: Mapping[str, str], now: float) -> None:
        """After a pass: errors of files now served as wanted go; containers behind Caddy get their time."""
        loaded = self.loaded or {}
        for name in list(self._refused_text):
            if loaded.get(name) == wanted.get(name):
                del self._refused_text[name]
                self.holds.succeeded(name)
        fallback_ok = loaded.get(FALLBACK_FILE) == wanted.get(FALLBACK_FILE)
        for service in list(self.errors):
            name = snippet_file(service)
            if fallback_ok and loaded.get(name) == wanted.get(name):
                del self.errors[service]
        for service, why in refused.items():
            self.errors[service] = Note("RouteRefused", f"route values refused: {why}"[:500])
        routed: set[str] = set()
        for service, route in routes.items():
            name = snippet_file(service)
            if fallback_ok and name in wanted and loaded.get(name) == wanted[name]:
                routed |= route.container_ids
        lag = self.refresh if self.dns is not None else 0.0  # Caddy's cached answer may still be the old one
        self.routed_since = {cid: self.routed_since.get(cid, now + lag) for cid in routed}
        self.holds.forget_except(set(wanted) | set(self._refused_text))
        if not self._refused_text:
            self.load.accepted()

    def _ensure_running(self) -> None:
        """A Caddy meshop runs that died is started again (on the last accepted files: the folder's)."""
        if self.managed is None or self.managed.alive():
            return
        log.warning("node Caddy (run by meshop) is not running; starting it again")
        try:
            self.managed.start(self.applier.admin)
        except DriverError as exc:
            log.error("could not start the node Caddy: %s", exc)
        self.loaded = None


def _set(files: Files, name: str, text: str | None) -> None:
    if text is None:
        files.pop(name, None)
    else:
        files[name] = text
