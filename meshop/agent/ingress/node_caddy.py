"""The node's Caddy as the agent sees it: one meshop runs itself (``--caddy-dir``) or one the operator runs
(``--caddy-admin``, ``--caddy-config``, ``--caddy-snippets``), wired to a ``NodeIngress``.

With ``--caddy-dir DIR`` meshop writes ``DIR/Caddyfile`` (admin API on the unix socket ``DIR/admin.sock``,
``import DIR/sites/*.caddy``), starts ``caddy run`` on it (PID in ``DIR/caddy.pid``) and stops it by that
PID when the agent stops. With a Caddy of your own, the agent loads your Caddyfile (read from disk at each
reload) through its admin API; that file must import the snippet folder.

With ``--ingress-https-port`` the routes are also served over HTTPS (``tls.py``); the TLS mode follows the
Gateway document, which the agent then watches (``follow_gateway``). A Caddy meshop runs keeps its
certificates and keys (and, for ``tls internal``, its local CA) under ``DIR/data/caddy``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from meshop import metrics
from meshop.agent.ingress.snippets import GATEWAYS, NODE_PROXY, TRUSTED_PROXIES, IngressSettings, trusted_cidrs
from meshop.agent.ingress.sync import NodeIngress
from meshop.agent.ingress.tls import NodeTLS, tls_from_document
from meshop.caddy.admin import CaddyAdmin
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.process import ManagedCaddy
from meshop.caddy.render import render_global, render_import
from meshop.caddy.snippet_dir import SnippetDir
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.consul.kv import Listing
from meshop.errors import DriverError, MeshopError
from meshop.model import keys

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL


@dataclass(frozen=True)
class CaddyOptions:
    """``directory`` (meshop runs Caddy) or ``admin`` + ``config`` + ``snippets`` (you run it)."""

    ingress_port: int
    ingress_bind: tuple[str, ...] = ("127.0.0.1",)
    directory: Path | None = None
    admin: str | None = None
    config: Path | None = None
    snippets: Path | None = None
    caddy_bin: str = "caddy"
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES
    upstream_dns: str | None = "unix"  # the node Caddy's upstream DNS responder (None: static snippets)
    https_port: int | None = None  # HTTPS for local routes (TLS mode from the Gateway document); None: off

    def check(self) -> None:
        external = (self.admin, self.config, self.snippets)
        if self.directory is not None and any(external):
            raise MeshopError("give either --caddy-dir or --caddy-admin/--caddy-config/--caddy-snippets, not both")
        if self.directory is None and not all(external):
            raise MeshopError("a Caddy of your own needs all of --caddy-admin, --caddy-config and --caddy-snippets")
        if not 0 < self.ingress_port < 65536:
            raise MeshopError(f"--ingress-port {self.ingress_port} is not a port")
        if self.https_port is not None and not 0 < self.https_port < 65536:
            raise MeshopError(f"--ingress-https-port {self.https_port} is not a port")
        if self.https_port == self.ingress_port:
            raise MeshopError("--ingress-https-port must differ from --ingress-port")
        if self.directory is not None and len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise MeshopError(f"--caddy-dir {self.directory} is too long for a unix socket path; use a shorter one")

    @property
    def socket_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "admin.sock"

    @property
    def snippet_folder(self) -> Path:
        if self.directory is not None:
            return self.directory / "sites"
        assert self.snippets is not None
        return self.snippets


class NodeCaddy:
    """Owns the ``NodeIngress`` and, with ``--caddy-dir``, the Caddy process."""

    def __init__(self, options: CaddyOptions, upstream_host: str, host_network_host: str) -> None:
        options.check()
        self.options = options
        for result in metrics.CADDY_RESULTS:  # at zero from the start, so rates and alerts work at once
            metrics.caddy_reloads_total.labels("agent", result)
        metrics.caddy_config_refused.labels("agent").set(0)
        settings = IngressSettings(
            port=options.ingress_port,
            bind=options.ingress_bind,
            upstream_host=upstream_host,
            host_network_host=host_network_host,
            proxy=replace(NODE_PROXY, trusted_proxies=trusted_cidrs(options.trusted_proxies)),
            https_port=options.https_port,
        )
        folder = SnippetDir(options.snippet_folder)
        self.managed: ManagedCaddy | None = None
        if options.directory is not None:
            # HTTPS sites need Caddy's certificate automation; the plain http:// sites are untouched by it
            auto_https = "disable_redirects" if options.https_port else "off"
            self.admin = CaddyAdmin(f"unix/{self.options.socket_path}")
            main = (
                "# Rendered by meshop agent; edits are overwritten. Routes live in sites/.\n"
                + render_global(admin=self.admin.address, auto_https=auto_https)
                + render_import(str(folder.path))
            )
            self.managed = ManagedCaddy(options.directory, main, options.caddy_bin)
            self._main_text = main
            main_config = self._rendered_main
        else:
            assert options.admin is not None and options.config is not None
            self.admin = CaddyAdmin(options.admin)
            config_path = options.config
            main_config = config_path.read_text
        self.folder = folder
        self.dns = UpstreamDNS(options.upstream_dns, options.directory) if options.upstream_dns else None
        self.ingress = NodeIngress(
            settings,
            folder,
            ConfigApplier(self.admin, "agent", self.managed),
            main_config,
            managed=self.managed,
            dns=self.dns,
        )

    def follow_gateway(self, listing: Listing | None) -> bool:
        """Take the TLS mode and domains of the Gateway document in ``listing`` (called by the watch of
        ``desired/gateway``); True when they changed. A document that does not validate keeps the
        previous ones (logged): an operator's typo never takes HTTPS away from running routes."""
        entry = next((e for e in (listing.entries if listing else ()) if e.key == keys.DESIRED_GATEWAY), None)
        if entry is None:
            log.warning(
                "node HTTPS: no Gateway document at %s (or this agent's token may not read it: run "
                "`meshop acl sync`); no HTTPS sites",
                keys.DESIRED_GATEWAY,
            )
        try:
            tls = tls_from_document(entry.value if entry else None)
        except MeshopError as exc:
            log.error("node HTTPS keeps its previous TLS settings: %s", exc)
            return False
        return self.set_tls(tls)

    @property
    def follows_gateways(self) -> bool:
        """True when ``--ingress-trusted-proxy`` names ``gateways`` (the default)."""
        return GATEWAYS in self.options.trusted_proxies

    def follow_gateways(self, listing: Listing | None) -> bool:
        """Trust X-Forwarded-* from exactly the addresses the gateways claimed (``gateways/<id>``, called by
        that prefix's watch); True when the trusted set changed. A claim that is not ``{"address": IP}``
        adds nothing."""
        addresses = []
        for entry in listing.entries if listing else ():
            try:
                claim = json.loads(entry.value)
            except ValueError:
                continue
            address = claim.get("address") if isinstance(claim, dict) else None
            if isinstance(address, str):
                addresses.append(address)
        cidrs = trusted_cidrs(self.options.trusted_proxies, tuple(sorted(addresses)))
        settings = self.ingress.settings
        if settings.proxy.trusted_proxies == cidrs:
            return False
        log.info("node Caddy trusts X-Forwarded-* from %s", ", ".join(cidrs))
        self.ingress.settings = replace(settings, proxy=replace(settings.proxy, trusted_proxies=cidrs))
        return True

    def set_tls(self, tls: NodeTLS) -> bool:
        settings = self.ingress.settings
        if settings.tls == tls:
            return False
        log.info("node HTTPS: TLS mode %s, domains %s", tls.mode, ", ".join(tls.domains) or "all")
        self.ingress.settings = replace(settings, tls=tls)  # one reference swap: the next pass renders it
        return True

    def _rendered_main(self) -> str:
        return self._main_text

    def start(self) -> None:
        """Start the Caddy meshop runs (on the files of the last run; without them if Caddy refuses those)."""
        self.folder.path.mkdir(parents=True, exist_ok=True)
        if self.dns is not None:
            self.dns.start()
            log.info("upstream DNS for the node Caddy on udp/%s", self.dns.address)
        if self.managed is None:
            self._check_external()
            return
        self.managed.save(self._main_text)
        try:
            self.managed.start(self.admin)
        except DriverError as exc:
            log.warning("node Caddy did not start on the previous routes (%s); starting it without them", exc)
            self.folder.replace_all({})
            self.managed.start(self.admin)
        log.info(
            "node Caddy started (PID %s, admin %s)",
            self.managed.process.pid if self.managed.process else "?",
            self.admin.address,
        )

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()
            log.info("node Caddy stopped")
        if self.dns is not None:
            self.dns.stop()

    def _check_external(self) -> None:
        assert self.options.config is not None
        try:
            text = self.options.config.read_text()
        except OSError as exc:
            raise MeshopError(f"cannot read --caddy-config {self.options.config}: {exc}") from None
        if str(self.folder.path) not in text:
            log.warning(
                "%s does not seem to import %s/*.caddy: the routes the agent writes there will not be served",
                self.options.config,
                self.folder.path,
            )
        if not self.admin.ready():
            log.warning(
                "the Caddy admin API at %s does not answer yet; routes are loaded once it does", self.admin.address
            )
