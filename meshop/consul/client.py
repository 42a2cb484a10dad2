"""Makes py-consul clients from a ``ConsulConfig`` and turns their failures into meshop errors.

This file and its siblings are the only code in meshop that imports ``consul`` or sees ``requests``
exceptions; everything above them deals in ``meshop.errors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from meshop.consul.config import ConsulConfig
from meshop.consul.http import index_header
from meshop.errors import ConflictError, ConsulAccessDenied, ConsulError, ConsulUnavailable, ValueTooLarge
from meshop.libs import without_charset_detection

with without_charset_detection():  # see meshop.libs: ~4 MB less in every daemon
    import consul
    import requests
    from consul.callback import CB
    from consul.exceptions import ClientError as ConsulClientError

TOKEN_HEADER = "X-Consul-Token"
CONSISTENCY = "consistent"  # never read a restarting server's half-replayed state (make_client)


def make_client(config: ConsulConfig) -> consul.Consul:
    """A client with a timeout on every call, the ACL token, TLS from ``config``, and consistent reads.

    Consistent reads: a Consul server that has just restarted is elected and answers default-mode
    reads about two seconds later, while it still replays its Raft log, so a read may return a prefix of
    the KV (an empty ``desired/``, a few of a node's assignments): a controller would delete whatever that
    prefix lacks. In consistent mode the server refuses ("Not ready to serve consistent reads") until the
    replay is done; the caller retries as for any unreachable Consul. (py-consul applies it to KV, catalog
    and session reads; ``KVStore.list_together`` asks for it on its transaction.)
    """
    verify: bool | str = config.ca_file if (config.verify and config.ca_file) else config.verify
    cert = (config.cert_file, config.key_file) if config.cert_file and config.key_file else config.cert_file
    client = consul.Consul(
        host=config.host,
        port=config.port,
        scheme=config.scheme,
        verify=verify,
        cert=cert,
        connections_timeout=config.timeout,
        consistency=CONSISTENCY,
    )
    # py-consul lets CONSUL_HTTP_TOKEN override an explicit token; meshop wants flags to win.
    client.token = config.token
    # ... and some of its calls (``txn.put``, ``agent.self``, ``event.list``, ``status.leader``) send no
    # token at all, so they would run as anonymous: put the token on the HTTP session itself, which
    # every request of this client goes through.
    session_headers = client.http.session.headers
    session_headers.pop(TOKEN_HEADER, None)
    if config.token:
        session_headers[TOKEN_HEADER] = config.token
    return client


@contextmanager
def consul_errors(config: ConsulConfig, what: str) -> Iterator[None]:
    """Translate transport and HTTP failures of one Consul call into the meshop error tree."""
    try:
        yield
    except (requests.ConnectionError, requests.Timeout) as exc:
        kind = "timed out" if isinstance(exc, requests.Timeout) else "unreachable"
        raise ConsulUnavailable(
            f"Consul at {config.address} is {kind} ({what}); start it or set CONSUL_HTTP_ADDR / --consul-addr"
        ) from None
    except consul.ACLPermissionDenied as exc:
        raise ConsulAccessDenied(
            f"Consul at {config.address} denied {what}: ACL permission denied; "
            f"set CONSUL_HTTP_TOKEN / --token to a token with access ({_short(exc)})"
        ) from None
    except consul.ACLDisabled as exc:
        raise ConsulAccessDenied(f"Consul at {config.address} refused {what}: {_short(exc)}") from None
    except consul.ConsulException as exc:
        message = _short(exc)
        if "too large" in message.lower() or "413" in message[:4]:
            raise ValueTooLarge(f"Consul refused {what}: {message}") from None
        if message.startswith("409"):
            raise ConflictError(f"{what} lost against a concurrent writer: {message}") from None
        raise ConsulError(f"Consul at {config.address} failed {what}: {message}") from None
    except requests.RequestException as exc:
        raise ConsulUnavailable(f"Consul at {config.address} failed {what}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


class ClientKV:
    """The KV primitives ``KVStore`` needs, over py-consul (the daemons' path; ``http.HTTPKV`` is the
    CLI's, with the same interface and errors)."""

    def __init__(self, client: consul.Consul, config: ConsulConfig) -> None:
        self.client, self.config = client, config

    def get(
        self,
        full: str,
        what: str,
        *,
        recurse: bool = False,
        keys: bool = False,
        index: int | None = None,
        wait: str | None = None,
        stale: bool = False,
    ) -> tuple[int, Any]:
        with consul_errors(self.config, what):
            mode = {"consistency": "stale"} if stale else {}
            new_index, raw = self.client.kv.get(
                full, recurse=recurse, keys=keys, index=index or None, wait=wait, **mode
            )
        return index_header(new_index), raw

    def put(self, full: str, data: bytes, what: str, *, cas: int | None = None) -> bool:
        with consul_errors(self.config, what):
            return bool(self.client.kv.put(full, data, cas=cas))

    def delete(self, full: str, what: str, *, cas: int | None = None, recurse: bool = False) -> bool:
        with consul_errors(self.config, what):
            return bool(self.client.kv.delete(full, cas=cas, recurse=recurse or None))

    def txn(self, body: str, what: str, *, consistent: bool = False) -> tuple[int, str]:
        """(status, response text): 200 (done) or 409 (rolled back); other failures raise."""
        params = [(CONSISTENCY, "1")] if consistent else []
        with consul_errors(self.config, what):
            try:
                answer = self.client.http.put(CB.json(), "/v1/txn", params=params, data=body)
            except ConsulClientError as exc:
                text = str(exc)
                if text.startswith("409"):
                    return 409, text[4:]
                raise
        return 200, json.dumps(answer)

    def close(self) -> None:
        """Nothing to do: the py-consul client is shared (``KVStore.client``)."""
