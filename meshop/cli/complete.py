"""Shell completion of resource names (click's ``shell_complete`` callbacks): services and nodes from Consul.

Click completes commands, flags and choices by itself (``_MESHOP_COMPLETE=bash_source|zsh_source|fish_source
meshop``, docs/cli.md); these callbacks add the names only the cluster knows. A completion runs on every
Tab press, so it lists keys only (no values), gives Consul ``TIMEOUT`` seconds, and on any failure (Consul
down, no token, a bad flag) completes nothing: a shell must never print a traceback under the prompt.
Only RFC 1123 labels are offered: a key written by hand with a newline or an escape sequence in its name
must not add completions or reach the terminal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from meshop.model import keys
from meshop.model.names import is_dns_label

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from meshop.consul.store import KVStore

TIMEOUT = 1.5
NODE_KINDS = ("node", "nodes")
GATEWAY_KINDS = ("gateway", "gateways", "gw")


def services(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Service names (``desired/services/``)."""
    return _names(ctx, incomplete, lambda store: _under(store, keys.DESIRED_SERVICES))


def nodes(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Node names: registered by an agent (``nodes/``) or named by a Node document (``desired/nodes/``)."""
    return _names(ctx, incomplete, lambda store: [*_under(store, keys.NODES), *_under(store, keys.DESIRED_NODES)])


def by_kind(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Names of the kind given before (``get node <Tab>``: nodes; ``gateway``: the Gateway's; services
    otherwise)."""
    kind = ctx.params.get("kind") or ""
    if kind in GATEWAY_KINDS:
        return gateway(ctx, param, incomplete)
    return nodes(ctx, param, incomplete) if kind in NODE_KINDS else services(ctx, param, incomplete)


def gateway(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """The name of the one Gateway document (``desired/gateway``: one small value)."""
    return _names(ctx, incomplete, _gateway_name)


def _gateway_name(store: KVStore) -> list[str]:
    entry = store.get(keys.DESIRED_GATEWAY)
    try:
        doc = json.loads(entry.value) if entry else None
    except ValueError:
        return []
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None
    return [name] if isinstance(name, str) else []


def objects(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """``service/NAME`` and ``node/NAME`` (``meshop events OBJECT``)."""
    kind, slash, name = incomplete.partition("/")
    if not slash:
        return [f"{k}/" for k in ("service", "node") if k.startswith(incomplete)]
    found = nodes(ctx, param, name) if kind == "node" else services(ctx, param, name) if kind == "service" else []
    return [f"{kind}/{n}" for n in found]


def files(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """File names, as the shell completes them (``-f FILE|DIR|-``)."""
    return [CompletionItem(incomplete, type="file")]


def _names(ctx: click.Context, incomplete: str, read: Callable[[KVStore], Iterable[str]]) -> list[str]:
    try:
        from meshop.consul.config import ConsulConfig
        from meshop.consul.store import KVStore

        root = ctx.find_root().params
        config = ConsulConfig.from_env(
            addr=root.get("consul_addr"), token=root.get("token"), prefix=root.get("prefix"), timeout=TIMEOUT
        )
        found = read(KVStore.over_http(config))
        return sorted({name for name in found if name.startswith(incomplete) and is_dns_label(name)})
    except Exception:  # noqa: BLE001 - completion completes nothing rather than break the user's prompt
        return []


def _under(store: KVStore, prefix: str) -> list[str]:
    """The names one level under ``prefix`` (``nodes/n1`` -> ``n1``; deeper keys are not names)."""
    return [key[len(prefix) :] for key in store.keys(prefix) if "/" not in key[len(prefix) :]]
