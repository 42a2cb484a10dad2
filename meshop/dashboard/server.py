"""The dashboard's HTTP server (stdlib ``ThreadingHTTPServer``): routes, login, CSRF, SSE, headers.

Pages and fragments render from ``Live`` (one set of Consul blocking queries for every browser) or,
for a service page, from ``client.describe`` (what ``meshop describe`` reads); actions go through
``actions.node_action``. Every response carries a strict Content-Security-Policy (scripts and styles
from here only, no framing) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from meshop.client.cluster import check_access
from meshop.client.describe import describe_service, node_observed
from meshop.consul.acl import AclApi
from meshop.consul.config import ConsulConfig
from meshop.consul.events import EventLog
from meshop.consul.store import KVStore
from meshop.daemon.status_server import parse_listen
from meshop.dashboard import assets, auth, pages, views
from meshop.dashboard.actions import node_action, service_restart, writer_policies
from meshop.dashboard.live import Live
from meshop.errors import ConsulAccessDenied, ConsulError, MeshopError, NotFound
from meshop.model.digits import parse_uint
from meshop.model.names import is_dns_label

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send ``Origin: null`` on POST
    "Cache-Control": "no-store",
}
NODE_ACTION = re.compile(r"^/nodes/([^/]+)/(cordon|uncordon|drain)$")
SERVICE = re.compile(r"^/(fragment/)?service/([^/]+)$")
NODE = re.compile(r"^/(fragment/)?node/([^/]+)$")
SERVICE_ACTION = re.compile(r"^/service/([^/]+)/(restart)$")
MAX_BODY = 16 * 1024
KEEPALIVE = 15.0


@dataclass(frozen=True)
class LoginResult:
    """A sign-in's outcome: a session, or the HTTP status and why not (401 wrong, 429 throttled, 503 busy)."""

    session: auth.Session | None
    status: int = 303
    error: str = ""


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:8080"
    password: auth.PasswordHash | None = None
    actions: bool = False  # checked against the token's policies before this is set
    idle_timeout: float = 30.0  # a connection that sends nothing this long is closed (no slowloris)
    max_connections: int = 256  # served at once (a thread each); more are closed at once
    max_logins: int = 4  # sign-ins checked at once (a password check takes 16 MiB); more answer 503
    public_hosts: tuple[str, ...] = ()  # --public-host: served through the gateway's TLS; login required


class Dashboard:
    """The server and its state; ``start()`` binds, ``stop()`` ends every stream and the watches."""

    def __init__(self, config: ConsulConfig, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.settings = settings
        self.clock = clock
        host, port = parse_listen(settings.listen)
        self.loopback = auth.is_loopback(host)
        # open only on loopback, read-only, without a password file and not published: every local user
        # reaches loopback, an action runs with the dashboard's own (operator) token, and anyone on the
        # internet reaches a public host
        self.login_required = (
            not self.loopback or settings.password is not None or settings.actions or bool(settings.public_hosts)
        )
        self.hosts = auth.HostPolicy(self.loopback, 0, frozenset(h.lower() for h in settings.public_hosts))
        self.sessions = auth.LoginSessions()
        self.throttle = auth.Throttle()
        self.checking = threading.BoundedSemaphore(settings.max_logins)  # sign-ins being checked now
        self.local_csrf = secrets.token_urlsafe(32)  # the loopback page without login: one token per process
        self.store = KVStore(config)
        self.events = EventLog(self.store, "dashboard")
        self.live = Live(config, clock=clock)
        handler = _handler(self)
        try:
            self.httpd = _BoundedServer((host, port), handler, settings.max_connections)
        except OSError as exc:
            raise MeshopError(f"cannot listen on {settings.listen}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self.hosts = replace(self.hosts, port=self.port)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dashboard-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, ready_timeout: float = 15.0) -> Dashboard:
        check_access(self.store)  # a clear error (unreachable, access denied) before serving anything
        if self.login_required and self.settings.password is None and AclApi(self.config).token_self() is None:
            why = (
                f"it is published at {', '.join(self.settings.public_hosts)} (--public-host)"
                if self.settings.public_hosts
                else "it can act (--actions)"
                if self.loopback
                else f"it listens beyond loopback ({self.settings.listen})"
            )
            raise MeshopError(
                f"this dashboard requires a login ({why}), but Consul runs without ACLs, so no token can "
                "sign in: give --password-file (make one with `meshop dashboard --hash-password`)"
            )
        self.live.start()
        if not self.live.ready(ready_timeout):
            self.live.stop()
            raise MeshopError(f"Consul at {self.config.address} did not answer the dashboard's watches")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.live.stop()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- who is asking -----------------------------------------------------------------------------------
    def viewer(self, cookie: str | None, secure: bool = False) -> views.Viewer | None:
        """The viewer of a request; None when a login is required and the request has no live session
        (over TLS only the ``Secure`` cookie counts)."""
        if not self.login_required:  # loopback and read-only: nothing on the page can act
            return views.Viewer(actions=False, csrf=self.local_csrf)
        session = self.sessions.get(auth.session_id(cookie, secure), self.clock())
        if session is None:
            return None
        return views.Viewer(actions=self.settings.actions and session.may_act, csrf=session.csrf, user=session.user)

    def login(self, form: dict[str, str], client: str = "") -> LoginResult:
        """A session, or why not. A token must be able to read meshop's keys in Consul; the session may
        act (with ``--actions``) only when that token could write ``desired/`` itself: the dashboard acts
        with its own token, which must not lend a read-only token its rights.

        At most ``max_logins`` sign-ins are checked at once (more answer 503 at once, uncounted): each
        password check takes scrypt's 16 MiB, and 200 at once took the dashboard from 37 to 326 MiB. A
        try is counted before it is checked and given back only when it succeeds."""
        if not self.checking.acquire(blocking=False):
            return LoginResult(None, 503, "too many sign-ins at once; try again in a moment")
        try:
            if not self.throttle.reserve(self.clock(), client):
                return LoginResult(None, 429, "too many failed sign-ins; wait a minute")
            method = form.get("method", "")
            user, may_act, error = "", False, "unknown sign-in method"
            if method == "password" and self.settings.password is not None:
                if self.settings.password.verify(form.get("password", "")):
                    user, may_act = "password", True
                else:
                    error = "wrong password"
            elif method == "token":
                user, may_act, error = self._check_token(form.get("token", "").strip())
            if not user:
                return LoginResult(None, 401, error)
            self.throttle.refund(client)
            return LoginResult(self.sessions.create(user, self.clock(), may_act))
        finally:
            self.checking.release()

    def _check_token(self, token: str) -> tuple[str, bool, str]:
        """(user, whether the token may write desired/, "") or ("", False, why not)."""
        if not token or len(token) > 128 or not token.isprintable():
            return "", False, "a Consul ACL token is required"
        config = replace(self.config, token=token)
        try:
            itself = AclApi(config).token_self()
            if itself is None:
                return "", False, "Consul runs without ACLs, so a token proves nothing: start with --password-file"
            check_access(KVStore(config))  # a GET, refused with 403 unless the token may read meshop's keys
        except ConsulAccessDenied:
            return "", False, f"this token may not read {self.config.prefix}/ (use the read-only role's token)"
        except ConsulError:
            return "", False, "Consul could not check the token; try again"
        return f"token {itself.accessor_id[:8]}", bool(writer_policies(itself.policies, self.config.prefix)), ""

    def act(self, viewer: views.Viewer, node: str, mode: str) -> bool:
        return node_action(self.store, self.events, node, mode, viewer.user)

    def restart(self, viewer: views.Viewer, service: str) -> None:
        service_restart(self.store, self.events, service, viewer.user, self.clock())


class _BoundedServer(ThreadingHTTPServer):
    """At most ``limit`` connections at once, one thread each: a client trickling a header byte within
    every idle timeout keeps its thread, so without a bound many such clients would exhaust threads and
    memory. A connection over the limit is closed at once (live pages reconnect their stream). The
    listen backlog is 128, not socketserver's 5: a burst of connections waits to be accepted instead of
    being reset by the kernel (200 at once: dozens were reset)."""

    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler(dash: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "meshop-dashboard"
        sys_version = ""
        timeout = dash.settings.idle_timeout  # on the socket: a half-sent request cannot hold a thread

        # -- plumbing ------------------------------------------------------------------------------------
        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, code: int, body: str | bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            for name, value in {**self._security_headers(), "Content-Type": ctype, **headers}.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser moved on
                    self.wfile.write(data)

        def _tls(self) -> bool:
            """The visitor came over TLS (through the gateway): Secure cookies and HSTS."""
            return dash.hosts.over_tls(self.headers.get("Host"), self.headers.get("X-Forwarded-Proto"))

        def _security_headers(self) -> dict[str, str]:
            return {**SECURITY_HEADERS, "Strict-Transport-Security": auth.HSTS} if self._tls() else SECURITY_HEADERS

        def _redirect(self, where: str, **headers: str) -> None:
            self._send(303, b"", "text/plain", Location=where, **headers)

        def _path(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            return parts.path, parse_qs(parts.query)

        def _form(self) -> dict[str, str] | None:
            """The urlencoded body; None (and the answer sent) when its length is missing a number or
            too large: ``-1`` would read until the client hangs up, text would end the handler."""
            length = parse_uint((self.headers.get("Content-Length") or "0").strip(), limit=10**18)
            if length is None:  # not ASCII digits, or past 18 of them (int() refuses 4,301)
                self._send(400, pages.error(400, "Content-Length must be a number"), Connection="close")
                return None
            if length > MAX_BODY:
                self._send(413, pages.error(413, "request too large"), Connection="close")
                return None
            raw = self.rfile.read(length).decode("utf-8", "replace")
            return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

        def _admitted(self) -> bool:
            """The Host must be one this dashboard answers to (``auth.HostPolicy``: no DNS rebinding, no
            forged public host), and a dashboard without a login is never served through a proxy."""
            if not dash.hosts.allowed(self.headers.get("Host")):
                names = "its --public-host or a loopback" if dash.hosts.public else "a loopback"
                self._send(421, pages.error(421, f"this dashboard answers only to {names} host name"))
                return False
            if not dash.login_required and auth.proxied(self.headers):
                why = "this dashboard has no login, so it is never served through a proxy (start it with --public-host)"
                self._send(403, pages.error(403, why))
                return False
            return True

        def _same_origin(self) -> bool:
            """A browser names the page a POST comes from; it must be this dashboard (``null``: refused)."""
            origin = self.headers.get("Origin")
            return origin is None or urlsplit(origin).netloc == (self.headers.get("Host") or "")

        def _viewer_or_login(self, page: bool) -> views.Viewer | None:
            viewer = dash.viewer(self.headers.get("Cookie"), self._tls())
            if viewer is None:
                if page:
                    self._redirect("/login")
                else:
                    self._send(401, "sign in first\n", "text/plain; charset=utf-8")
            return viewer

        # -- GET -----------------------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if not self._admitted():
                return
            path, query = self._path()
            if path == "/static/app.css":
                return self._send(200, assets.CSS, "text/css; charset=utf-8")
            if path == "/static/app.js":
                return self._send(200, assets.JS, "text/javascript; charset=utf-8")
            if path == "/login":
                if not dash.login_required:
                    return self._redirect("/")
                return self._send(200, pages.login(password=dash.settings.password is not None))
            page = not (path.startswith("/fragment/") or path == "/stream")
            viewer = self._viewer_or_login(page)
            if viewer is None:
                return None
            try:
                self._get(path, query, viewer)
            except NotFound as exc:
                self._send(404, pages.error(404, str(exc), viewer))
            except MeshopError as exc:
                self._send(503, pages.error(503, str(exc), viewer))

        def _get(self, path: str, query: dict[str, list[str]], viewer: views.Viewer) -> None:
            if path == "/":
                version = dash.live.version  # read first: any change after it is announced to the page
                body = views.overview(dash.live.overview(), viewer)
                page = pages.shell("Fleet", body, viewer, "/fragment/overview", f"/stream?since={version}")
                return self._send(200, page)
            if path == "/fragment/overview":
                return self._send(200, views.overview(dash.live.overview(), viewer))
            if path == "/stream":
                return self._stream(query)
            found = SERVICE.match(path)
            if found:
                name = unquote(found.group(2))
                if not is_dns_label(name):  # a service name; never a path into other keys (``..%2F``)
                    raise NotFound(f"no such service: {name[:80]!r}")
                version = dash.live.version
                desc = describe_service(KVStore(dash.config), name, dash.clock)
                body = views.service(desc, dash.clock(), viewer)
                if found.group(1):
                    return self._send(200, body)
                return self._send(
                    200,
                    pages.shell(name, body, viewer, f"/fragment/service/{found.group(2)}", f"/stream?since={version}"),
                )
            found = NODE.match(path)
            if found:
                return self._node(found.group(2), bool(found.group(1)), viewer)
            found, kind = NODE_ACTION.match(path), "node"
            if found is None:
                found, kind = SERVICE_ACTION.match(path), "service"
            if found and viewer.actions:
                return self._send(200, pages.confirm(found.group(2), kind, unquote(found.group(1)), viewer))
            if found:
                return self._send(
                    403, pages.error(403, "this dashboard is read-only (start it with --actions)", viewer)
                )
            return self._send(404, pages.error(404, "no such page", viewer))

        def _node(self, quoted: str, fragment: bool, viewer: views.Viewer) -> None:
            name = unquote(quoted)
            version = dash.live.version
            overview = dash.live.overview()
            row = next((r for r in overview.report.nodes if r.name == name), None)
            if row is None:
                raise NotFound(f"node/{name} not found: no agent registered it and no Node document names it")
            observed = node_observed(KVStore(dash.config), name)
            body = views.node(row, observed, dash.live.events_about(f"node/{name}"), overview.report.now, viewer)
            if fragment:
                return self._send(200, body)
            page = pages.shell(f"node {name}", body, viewer, f"/fragment/node/{quoted}", f"/stream?since={version}")
            return self._send(200, page)

        def _stream(self, query: dict[str, list[str]]) -> None:
            """Server-sent events: ``changed`` whenever the live state moved (at once if it moved since
            the page was rendered: ``?since=``); a comment every 15 s keeps proxies from closing it."""
            self.send_response(200)
            for name, value in {
                **self._security_headers(),
                "Content-Type": "text/event-stream",
                "X-Accel-Buffering": "no",
            }.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            since = (query.get("since") or [""])[0]
            seen = parse_uint(since, limit=10**18)  # ASCII digits only ("²".isdigit() is true)
            seen = -1 if seen is None else seen
            try:
                self.wfile.write(b"retry: 2000\n\n")
                self.wfile.flush()
                while not dash.live.stopping:
                    version = dash.live.wait_change(seen, KEEPALIVE)
                    if dash.live.stopping:
                        return
                    if dash.login_required and dash.viewer(self.headers.get("Cookie"), self._tls()) is None:
                        return  # logged out or expired: the page reloads into the login
                    line = f"event: changed\ndata: {version}\n\n" if version != seen else ": keep-alive\n\n"
                    seen = version
                    self.wfile.write(line.encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                return

        # -- POST ----------------------------------------------------------------------------------------
        def do_POST(self) -> None:
            if not self._admitted():
                return
            if not self._same_origin():
                return self._send(403, pages.error(403, "cross-origin request refused"))
            path, _ = self._path()
            form = self._form()
            if form is None:
                self.close_connection = True  # the unread body must not be taken for the next request
                return None
            if path == "/login":
                return self._login(form)
            viewer = self._viewer_or_login(page=True)
            if viewer is None:
                return None
            if not auth.csrf_ok(viewer.csrf, form.get("csrf")):
                return self._send(403, pages.error(403, "the form's CSRF token is missing or stale; reload", viewer))
            if path == "/logout":
                sid = auth.session_id(self.headers.get("Cookie"), self._tls())
                if sid:
                    dash.sessions.drop(sid)
                return self._redirect("/login", Set_Cookie=auth.clear_cookie(self._tls()))
            node, service = NODE_ACTION.match(path), SERVICE_ACTION.match(path)
            if node is None and service is None:
                return self._send(404, pages.error(404, "no such action", viewer))
            if not viewer.actions:
                return self._send(
                    403, pages.error(403, "this dashboard is read-only (start it with --actions)", viewer)
                )
            try:
                if node is not None:
                    dash.act(viewer, unquote(node.group(1)), node.group(2))
                elif service is not None:
                    dash.restart(viewer, unquote(service.group(1)))
            except NotFound as exc:
                return self._send(404, pages.error(404, str(exc), viewer))
            except MeshopError as exc:
                return self._send(409, pages.error(409, str(exc), viewer))
            return self._redirect(f"/service/{service.group(1)}" if service else "/")

        def _login(self, form: dict[str, str]) -> None:
            if not dash.login_required:
                return self._redirect("/")
            result = dash.login(form, auth.visitor(self.client_address[0], self.headers, dash.hosts))
            if result.session is None:
                page = pages.login(result.error, password=dash.settings.password is not None)
                extra = {"Retry_After": "60" if result.status == 429 else "1"} if result.status != 401 else {}
                return self._send(result.status, page, **extra)
            return self._redirect("/", Set_Cookie=auth.set_cookie(result.session, dash.clock(), self._tls()))

    return Handler
