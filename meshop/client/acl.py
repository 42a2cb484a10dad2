"""What ``meshop acl`` does: create the role policies and tokens, and keep agent policies in step with
placement. Run with a management token (``acl = "write"``); every step can be repeated.

Agent policies follow placement: node N may read ``secrets/<S>/`` only while S is assigned to N, and
register services only under the names the controller assigned to it (``assignments/N/``). What N
reports in ``observed/N/`` is N's own word: it never adds a name, it only keeps one N was granted before
(read back from N's current policy) while N still runs it, so N can deregister what it stops. Changing a policy needs
``acl = "write"``, which is as good as a management token, so no meshop daemon holds it: ``meshop acl
sync --watch`` is a small process of its own, run next to the Consul servers with the management token,
that re-renders the agent policies whenever ``assignments/`` or ``observed/`` change (and every
``resync``: an upgraded agent's policy loses the shared ``meshop-agent`` name once its ``meshop-agent-<node>``
is in the catalog, ``keeps_legacy_name``). Until it has run,
a newly assigned service's secret read or registration is refused and the agent retries it with backoff.

It runs on every Consul server host (``meshop init`` on the gateway, ``node add --server`` on the
others), so losing one host does not stop policies following placement. The watchers elect one active
syncer with the controller's election (``meshop.operator.election``, office ``ACL_SYNC``: the lock
``locks/acl-sync``, a session tied to the process's TTL check, lock-delay 1 s); the others keep their
watches warm and write nothing. ACL writes cannot carry the lock (``/v1/txn`` has no ACL operations), so
a deposed syncer frozen between its check and its write could still land one stale policy: the active
one reads every policy back on each full pass (every ``resync`` seconds, and at once when it is
elected) and rewrites what differs, which bounds such a regression to one ``resync`` period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from meshop.consul.acl import AclApi, AclPolicy
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.store import KVStore, Listing
from meshop.consul.watch import Watch, watch_prefix
from meshop.errors import ConsulError, DocumentError
from meshop.model import acl as policies
from meshop.model import keys
from meshop.model.agents import upgraded_agent_nodes
from meshop.model.names import is_dns_label
from meshop.operator.election import LeaderElection, Office

log = logging.getLogger(__name__)

ACL_SYNC = Office(key=keys.LOCK_ACL_SYNC, service="meshop-acl-sync", component="acl-sync", gauge=False)

SHARED_ROLES = tuple(role for role in policies.ROLES if role not in policies.NODE_ROLES)


@dataclass(frozen=True)
class ServicesByNode:
    """Per node: the services assigned to it, and those it reports running (``observed/``)."""

    assigned: dict[str, frozenset[str]]
    running: dict[str, frozenset[str]]

    def of(self, node: str) -> tuple[frozenset[str], frozenset[str]]:
        return self.assigned.get(node, frozenset()), self.running.get(node, frozenset())

    def rights(self, node: str, granted: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        """(assigned, kept) for ``node``'s policy: kept are names ``granted`` before (its current policy)
        that it still reports running and that are no longer assigned to it."""
        assigned, running = self.of(node)
        return assigned, (granted & running) - assigned


def placement_of(assignments: Listing, observed: Listing) -> ServicesByNode:
    """Pure: node -> service names from the two listings; keys that are not ``<node>/<service>`` with
    RFC 1123 names are skipped (``observed/`` is written by agents: hostile input)."""

    def by_node(listing: Listing, prefix: str) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for entry in listing.entries:
            parts = keys.split(entry.key, prefix)
            if len(parts) == 2 and is_dns_label(parts[0]) and is_dns_label(parts[1]):
                found.setdefault(parts[0], set()).add(parts[1])
        return {node: frozenset(names) for node, names in found.items()}

    return ServicesByNode(by_node(assignments, keys.ASSIGNMENTS), by_node(observed, keys.OBSERVED))


def keeps_legacy_name(rules: str, node: str, upgraded: frozenset[str]) -> bool:
    """Whether ``node``'s agent policy keeps the shared ``meshop-agent`` name (upgrade path,
    ``meshop.model.agents``): only while it has it already and the node's agent has not registered
    ``meshop-agent-<node>`` yet. Never added: a new node never gets it, an upgraded one loses it."""
    return node not in upgraded and policies.grants_legacy_agent_name(rules)


def _checked(call: Callable[[], policies.RolePolicy]) -> policies.RolePolicy:
    try:
        return call()
    except policies.AclInputError as exc:
        raise DocumentError(str(exc)) from None


class AclAdmin:
    """The ACL set-up of one meshop prefix."""

    def __init__(self, config: ConsulConfig) -> None:
        self.config = config
        self.api = AclApi(config)
        self.store = KVStore(config, self.api.client)
        self.prefix = config.prefix

    def render(self, role: str, node: str | None = None) -> policies.RolePolicy:
        """The role's policy; an agent's with the services placement gives its node right now."""
        if role in policies.NODE_ROLES and node:
            current = self.api.policy(_checked(lambda: policies.render("agent", self.prefix, node)).name)
            rules = current.rules if current is not None else ""
            assigned, kept = self.placement().rights(node, policies.granted_services(rules))
            legacy = keeps_legacy_name(rules, node, self.upgraded_agents())
            return _checked(lambda: policies.render(role, self.prefix, node, assigned, kept, legacy))
        return _checked(lambda: policies.render(role, self.prefix, node))

    def upgraded_agents(self) -> frozenset[str]:
        """The nodes whose agent registered its own ``meshop-agent-<node>`` (this release's)."""
        _, instances = Services(self.config, self.api.client).agents()
        return upgraded_agent_nodes(instances)

    def placement(self) -> ServicesByNode:
        return placement_of(self.store.list(keys.ASSIGNMENTS), self.store.list(keys.OBSERVED))

    def init(self) -> list[tuple[str, bool]]:
        """Create or update every shared role's policy: [(policy name, changed)]."""
        results = []
        for role in SHARED_ROLES:
            rendered = self.render(role)
            _, changed = self._upsert(rendered)
            results.append((rendered.name, changed))
        return results

    def _upsert(self, rendered: policies.RolePolicy) -> tuple[AclPolicy, bool]:
        """Write ``rendered`` unless a policy of that name belongs to something else (another prefix
        whose name maps to the same policy name, or a policy someone made by hand): that one is refused."""
        current = self.api.policy(rendered.name)
        if current is not None and current.description != rendered.description:
            raise DocumentError(
                f"ACL policy {rendered.name} exists but is not this one ({current.description!r}, "
                f"expected {rendered.description!r}); rename or delete it, or use another prefix"
            )
        return self.api.upsert_policy(rendered.name, rendered.description, rendered.rules)

    def token(self, role: str, node: str | None = None) -> str:
        """The SecretID of the role's token: the existing one with this description, else a new one.
        Its policy is created or brought up to date first."""
        rendered = self.render(role, node)
        policy, _ = self._upsert(rendered)
        for token in self.api.tokens_of(policy.id):
            if token.description == rendered.description and token.policies == (rendered.name,):
                found = self.api.token(token.accessor_id)
                if found is not None and found.secret_id:
                    return found.secret_id
        return self.api.create_token(rendered.description, [rendered.name]).secret_id

    def sync(self, placement: ServicesByNode | None = None) -> list[str]:
        """Re-render the policy of every node that has an agent policy; the names of those changed."""
        placement = placement or self.placement()
        upgraded = self.upgraded_agents()
        changed = []
        for policy in self.api.policies():
            node = policies.agent_node_of(policy.name, self.prefix)
            if node is None:
                continue
            current = self.api.policy(policy.name)
            if current is None:
                continue
            granted = policies.granted_services(current.rules)
            assigned, kept = placement.rights(node, granted)
            old = keeps_legacy_name(current.rules, node, upgraded)
            rendered = _checked(
                lambda n=node, a=assigned, k=kept, o=old: policies.render("agent", self.prefix, n, a, k, o)
            )
            if current.description != rendered.description:
                continue  # another prefix whose name maps to the same policy name: not ours
            if (current.rules, current.description) == (rendered.rules, rendered.description):
                continue
            if self.api.upsert_policy(rendered.name, rendered.description, rendered.rules)[1]:
                changed.append(rendered.name)
        return changed


class Gate(Protocol):
    """Who may write now (``LeaderElection``): ``confirmed`` within the lease, ``is_leader`` holding the lock."""

    @property
    def confirmed(self) -> bool: ...

    @property
    def is_leader(self) -> bool: ...


def should_sync(*, active: bool, woken: bool, placement: ServicesByNode, synced: ServicesByNode | None) -> bool:
    """Pure: a standby never writes; the active syncer syncs on every resync tick (``woken`` False: a full
    pass that reads every policy back) and on a wake-up whose placement differs from the last synced one
    (agents rewrite ``observed/`` on every pass: an equal placement costs no ACL call)."""
    return active and not (woken and placement == synced)


class AclSyncWatch:
    """``meshop acl sync --watch``: re-sync agent policies whenever the placement read from
    ``assignments/`` and ``observed/`` (blocking queries) changes, and every ``resync`` seconds, while
    ``gate`` (the election; None: always) says this watcher is the active one. A failed sync is logged
    and retried."""

    def __init__(self, admin: AclAdmin, resync: float = 30.0, gate: Gate | None = None) -> None:
        self.admin = admin
        self.resync = resync
        self.gate = gate
        self.passes = 0
        self._synced: ServicesByNode | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watches: list[Watch[Listing]] = []
        self._thread: threading.Thread | None = None

    def start(self) -> AclSyncWatch:
        for prefix in (keys.ASSIGNMENTS, keys.OBSERVED):
            self._watches.append(watch_prefix(self.admin.store, prefix, lambda _: self._wake.set()))
        self._thread = threading.Thread(target=self.run, name="acl-sync", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.resync)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not all(w.wait_ready(0) for w in self._watches):
                continue
            assignments, observed = (w.latest for w in self._watches)
            assert assignments is not None and observed is not None
            placement = placement_of(assignments, observed)
            active = self.gate is None or self.gate.confirmed
            if not active:
                self._synced = None  # elected later: the first pass is a full one
                if self.gate is not None and self.gate.is_leader:  # holding, lease not confirmed yet: soon
                    self._stop.wait(0.2)
                    self._wake.set()
                continue
            if not should_sync(active=active, woken=woken, placement=placement, synced=self._synced):
                continue
            try:
                for name in self.admin.sync(placement):
                    log.info("agent policy %s follows placement now", name)
                self._synced = placement
            except (ConsulError, DocumentError) as exc:
                log.warning("ACL sync failed (retrying): %s", exc)
                self._synced = None
                self._stop.wait(1.0)
                self._wake.set()
            self.passes += 1

    def kick(self) -> None:
        """A full pass now (this watcher was just elected)."""
        self._synced = None
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for watch in self._watches:
            watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


class ElectedAclSync:
    """An ``AclSyncWatch`` that writes only while its process holds ``locks/acl-sync``: run one on every
    server host; ``stop`` stops writing first, then releases the lock, so a standby takes over at once."""

    def __init__(
        self, config: ConsulConfig, resync: float, holder_id: str, *, lock_delay: int = 1, check_ttl: float = 3.0
    ) -> None:
        store = KVStore(config)
        self.election = LeaderElection(
            store,
            Services(config, store.client),
            holder_id,
            lock_delay=lock_delay,
            check_ttl=check_ttl,
            on_change=self._changed,
            heartbeat_services=Services(config, KVStore(config).client),
            confirm_store=KVStore(config),
            office=ACL_SYNC,
        )
        self.watch = AclSyncWatch(AclAdmin(config), resync, gate=self.election)

    def _changed(self, lock: object) -> None:
        if lock is not None:
            log.info("elected: the active acl sync (%s)", self.election.service_id)
            self.watch.kick()

    def start(self) -> ElectedAclSync:
        self.watch.start()
        self.election.start(wait_for_consul=True)  # a watch backs off and retries too: nothing exits
        return self

    def stop(self) -> None:
        self.watch.stop()
        self.election.stop()
