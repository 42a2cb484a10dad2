"""Who may see the dashboard and act on it: bind policy, password hashes, sessions, CSRF. Pure but for
``secrets`` (random tokens) and ``hashlib.scrypt``; the clock is passed in.

* Bound to loopback (the default) a read-only page is open like the CLI is to local users; a request
  must then name a loopback host (``Host``), so a web page elsewhere cannot reach it through DNS
  rebinding. A dashboard that can act (``--actions``) requires a login on loopback too: every local
  user of the host reaches loopback, and an action runs with the dashboard's operator token.
* Bound to anything else it requires a login: a Consul ACL token that may read meshop's keys (checked
  against Consul by the server), or the password whose scrypt hash is in ``--password-file``.
* Published through the gateway (``--public-host``, the Gateway document's ``spec.dashboard.host``) it
  requires a login wherever it listens; the ``Host`` must then be that host or a loopback/IP one, and a
  request that came over TLS (the public host, or ``X-Forwarded-Proto: https``) gets a ``Secure``
  ``__Host-`` cookie and HSTS. A dashboard without a login refuses every proxied request
  (``X-Forwarded-*``, ``Forwarded``, ``Via``): it is the loopback page of the CLI's users, never a site.
* A session is a random id in a cookie (HttpOnly, SameSite=Strict, Path=/), server-side, with a CSRF
  token every form that acts must send back; sign-ins are throttled per address (all of loopback is
  one; a try is counted before the password is checked) and at most a few are checked at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

COOKIE = "meshop_session"
SECURE_COOKIE = "__Host-meshop_session"  # browsers take it only with Secure, Path=/ and no Domain
HSTS = "max-age=31536000"
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via")
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 1000
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SCRYPT_MAXMEM = 256 * 2**20  # what a verification may use; a file asking for more is refused at start
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class AuthConfigError(ValueError):
    """A password file or listen address the dashboard cannot use; the message names it and why."""


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) that only this machine can reach. ``0.0.0.0``/``::``
    (every interface), other addresses and names are not."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(header: str) -> tuple[str, str]:
    """``Host`` header -> (host, port or ""): ``a:8080``, ``[::1]:8080``, ``[::1]``, ``a``."""
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    if header.count(":") == 1:
        host, _, port = header.partition(":")
        return host, port
    return header, ""


def host_allowed(header: str | None, port: int) -> bool:
    """For a loopback dashboard without login: the request's ``Host`` must be a loopback name or address
    (with our port, or none): a rebinding attacker's name is refused although it resolves to 127.0.0.1."""
    return HostPolicy(True, port).allowed(header)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` a request may name. A public host (``--public-host``) with any port: the gateway's
    HTTPS port is the visitor's to choose; on loopback also a loopback name with our port (no DNS
    rebinding); on another address with public hosts also an IP literal (a visitor on the tailnet).
    Without public hosts, a dashboard beyond loopback takes any ``Host`` (as before: it requires a login)."""

    loopback: bool
    port: int
    public: frozenset[str] = frozenset()

    def allowed(self, header: str | None) -> bool:
        if not header:
            return False
        host, given = split_host(header.strip())
        if host.lower() in self.public:
            return True
        if self.loopback:
            return is_loopback(host) and given in ("", str(self.port))
        return not self.public or is_loopback(host) or is_ip_literal(host)

    def over_tls(self, host_header: str | None, forwarded_proto: str | None) -> bool:
        """Whether the visitor's connection was TLS: a public host is only served by the gateway's TLS
        (its document refuses ``tls: off``); else the proxy's ``X-Forwarded-Proto`` says so. A forged
        ``https`` only makes the cookie stricter."""
        host = split_host((host_header or "").strip())[0].lower()
        proto = (forwarded_proto or "").split(",")[-1].strip().lower()
        return host in self.public or proto == "https"


def proxied(headers: object) -> bool:
    """True when a request carries a header a proxy adds (``headers`` has ``get``, like ``http.client``'s)."""
    get = getattr(headers, "get", None)
    return get is not None and any(get(name) is not None for name in PROXY_HEADERS)


def visitor(peer: str, headers: object, hosts: HostPolicy) -> str:
    """Whom the sign-in throttle counts: the peer's address; for a published dashboard reached from
    loopback (the gateway's Caddy beside it) the visitor that Caddy names last in ``X-Forwarded-For``
    (Caddy replaces what a visitor sent), so one stranger's guesses do not lock out everyone else; that
    visitor is grouped as ``client_key`` groups peers (an IPv6 visitor is its /64). Residual: a local user
    can forge the header on a published dashboard and vary it, so there guessing from the host itself is
    bounded by the scrypt checks at a time, not by the per-client count."""
    get = getattr(headers, "get", None)
    forwarded = get("X-Forwarded-For") if get is not None and hosts.public and is_loopback(peer) else None
    last = forwarded.split(",")[-1].strip()[:64] if forwarded else ""
    return f"{client_key(peer)} for {_forwarded_key(last)}" if last else peer


def _forwarded_key(visitor: str) -> str:
    """A forwarded visitor as ``client_key`` groups it, except that loopback visitors stay apart: a local
    sender can forge the header whole anyway (above), so grouping them would only merge real visitors."""
    key = client_key(visitor)
    return visitor if key == LOOPBACK_CLIENT else key


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$<salt>$<hash>`` (base64): the one line ``--password-file`` holds."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 2**20, **SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, line: str, source: str = "password file") -> PasswordHash:
        parts = line.strip().split("$")
        try:
            if len(parts) != 6 or parts[0] != "scrypt":
                raise ValueError("not scrypt$N$r$p$salt$hash")
            n, r, p = (int(x) for x in parts[1:4])
            if n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
                raise ValueError("scrypt parameters too weak or malformed (N >= 16384, a power of two)")
            if 129 * r * n > SCRYPT_MAXMEM:  # scrypt needs 128*r*N bytes (and a little more)
                raise ValueError(f"scrypt parameters need more than {SCRYPT_MAXMEM // 2**20} MiB per sign-in")
            salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
            if len(salt) < 8 or len(digest) < 16:
                raise ValueError("salt or hash too short")
        except ValueError as exc:
            raise AuthConfigError(f"{source}: {exc}; make one with `meshop dashboard --hash-password`") from None
        return cls(n, r, p, salt, digest)

    def verify(self, password: str) -> bool:
        got = hashlib.scrypt(
            password.encode(),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.digest),
            maxmem=SCRYPT_MAXMEM,
        )
        return hmac.compare_digest(got, self.digest)


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    user: str
    expires: float
    may_act: bool = False  # whoever signed in may act (password, or a token that may write desired/)


class LoginSessions:
    """Server-side sessions by random id; at most ``limit`` (the oldest go first)."""

    def __init__(self, ttl: float = SESSION_TTL, limit: int = MAX_SESSIONS) -> None:
        self.ttl = ttl
        self.limit = limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, user: str, now: float, may_act: bool = False) -> Session:
        """A new session; expired ones go first, then, past ``limit``, the oldest (signed out)."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, now + self.ttl, may_act)
        with self._lock:
            while self._by_id and next(iter(self._by_id.values())).expires <= now:  # oldest first: same TTL
                self._by_id.popitem(last=False)
            self._by_id[session.sid] = session
            while len(self._by_id) > self.limit:
                self._by_id.popitem(last=False)
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires <= now:
                del self._by_id[sid]
                return None
            return session

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


def session_id(cookie_header: str | None, secure: bool = False) -> str | None:
    """The session id in the request's cookie: over TLS only the ``__Host-`` one (a cookie another host
    of the domain set, over HTTP or with ``Domain=``, cannot stand in for it)."""
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(SECURE_COOKIE if secure else COOKIE)
    return morsel.value if morsel else None


def set_cookie(session: Session, now: float, secure: bool = False) -> str:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Path=/; over TLS
    also Secure (never sent in clear) under the ``__Host-`` name."""
    max_age = max(0, int(session.expires - now))
    return _cookie(session.sid, max_age, secure)


def clear_cookie(secure: bool = False) -> str:
    return _cookie("", 0, secure)


def _cookie(value: str, max_age: int, secure: bool) -> str:
    name, flags = (SECURE_COOKIE, "; Secure") if secure else (COOKIE, "")
    return f"{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{flags}"


def csrf_ok(expected: str, got: str | None) -> bool:
    return bool(expected) and got is not None and hmac.compare_digest(expected.encode(), got.encode())


LOOPBACK_CLIENT = "loopback"


def client_key(address: str) -> str:
    """The client a sign-in try counts against. Every loopback source is one client: a local user can
    send from any of 127.0.0.0/8 (and ``::1``), and counting each address apart gave them 16 million
    times ten tries a minute. An IPv6 client is its /64, which one host usually holds whole. Anything
    else that is not an address (a test's "") stays as it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOOPBACK_CLIENT
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """At most ``limit`` sign-in tries per ``window`` seconds from one client address; then that address
    waits. A try is counted (``reserve``) before its password or token is checked, in one step under the
    lock, and given back (``refund``) only when it succeeded: checking first and counting after the
    check let concurrent guesses all pass the check before any was counted (60 at once got 12 tries
    against a limit of 10). Per address, not for everybody: a global count let anyone who reaches the
    port lock every user out with ten bad attempts a minute. Addresses are grouped by ``client_key``
    (all of loopback is one client, an IPv6 client its /64). At most ``clients`` of them are remembered
    (the least recently trying go first). Behind a proxy every client has the proxy's address: one
    shared count."""

    def __init__(self, limit: int = 10, window: float = 60.0, clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.clients = clients
        self._tries: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        tries = self._tries.get(client, deque())
        while tries and tries[0] <= now - self.window:
            tries.popleft()
        return tries

    def reserve(self, now: float, client: str = "") -> bool:
        """Count one try for ``client`` and say whether it may be made (False: over the limit, not counted)."""
        client = client_key(client)
        with self._lock:
            tries = self._recent(client, now)
            if len(tries) >= self.limit:
                return False
            tries.append(now)
            self._tries[client] = tries
            self._tries.move_to_end(client)
            while len(self._tries) > self.clients:
                self._tries.popitem(last=False)
            return True

    def refund(self, client: str = "") -> None:
        """A reserved try succeeded: it does not count against the address."""
        client = client_key(client)
        with self._lock:
            tries = self._tries.get(client)
            if tries:
                tries.pop()

    def blocked(self, now: float, client: str = "") -> bool:
        client = client_key(client)
        with self._lock:
            return len(self._recent(client, now)) >= self.limit
