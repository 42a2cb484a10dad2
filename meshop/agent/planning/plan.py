"""The value types the agent's planner works on: what should run, what runs, what to do about it.

All frozen dataclasses and pure. ``ServiceTarget`` is one assignment reduced to what the planner
needs; ``Container`` is one managed container as Docker reports it; ``World`` carries everything else
the planner may look at (the clock, probe results, holds); ``NodePlan`` holds the actions in named buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Strategy = Literal["start-first", "stop-first"]
ReplicaKey = tuple[str, int]  # (service, replica)

ALIVE_STATES = frozenset({"running", "restarting", "paused"})
BROKEN_STATES = frozenset({"created", "dead"})  # never ran, or cannot run again: replace


@dataclass(frozen=True)
class Note:
    """Why a service is not (yet) as desired: a CamelCase reason and a message without secrets."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class ServiceTarget:
    """One assignment as the planner sees it.

    ``config_hash`` names the exact container configuration (spec hash plus a digest of resolved
    secret values); None means it is unknown right now (a secret could not be read), so the planner
    keeps whatever runs and creates nothing. ``hold`` set means nothing new may be created (policy
    refusal, invalid spec) while existing containers are kept. ``fence`` set means no container of it
    may exist here now (a stateful volume whose lock this node does not hold fresh): every copy goes,
    whether or not the assignments are authoritative, and nothing is created or started.
    """

    name: str
    replicas: int
    spec_hash: str
    generation: int
    image: str
    config_hash: str | None
    strategy: Strategy = "stop-first"
    health_timeout: float = 30.0
    auto_rollback: bool = True
    has_health: bool = False
    restart: str = "unless-stopped"
    hold: Note | None = None
    min_ready: float = 0.0  # without a health check: seconds a new container must run before it takes over
    fence: Note | None = None  # why no copy may run here now (the volume lock keeper, docs/stateful.md)


@dataclass(frozen=True)
class Container:
    """A managed container of this node, from its labels and Docker's state."""

    id: str
    name: str
    service: str
    replica: int
    spec_hash: str
    config_hash: str
    generation: int
    image: str
    state: str  # created | running | restarting | paused | exited | dead | removing
    created_at: float = 0.0
    started_at: float = 0.0
    exit_code: int = 0
    restart_count: int = 0
    host_ports: Mapping[str, int] = field(default_factory=dict)  # "8080/tcp" -> 32768

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class World:
    """Everything besides desired and observed containers that a planning decision may depend on."""

    now: float
    authoritative: bool = True  # False: assignments came from the cache (Consul unreadable): delete nothing
    images: frozenset[str] = frozenset()  # images present on the engine
    healthy: Mapping[str, bool] = field(default_factory=dict)  # container id -> latest probe result
    promoted: Mapping[str, float] = field(default_factory=dict)  # container id -> when it became the registered one
    restart_hold: frozenset[str] = frozenset()  # container ids whose restart backoff is still running
    service_hold: frozenset[str] = frozenset()  # services in error backoff: nothing new is attempted
    protected: frozenset[str] = frozenset()  # services whose assignment is unreadable: containers kept as they are
    drain: float = 1.0  # seconds between re-registering a replica and removing the container it replaced
    # container ids this agent has registered as their replica's container since it started; a container
    # removed that is not among them was sent nothing by this agent (a stale copy the engine restarted at
    # boot, a surge that never turned healthy) and is killed at once. None: not tracked, all stop gracefully
    served: frozenset[str] | None = None


@dataclass(frozen=True)
class Pull:
    service: str
    image: str


@dataclass(frozen=True)
class Create:
    """Create and start a new container for a replica."""

    service: str
    replica: int
    config_hash: str
    reason: str  # missing | surge (start-first update)


@dataclass(frozen=True)
class Start:
    container: Container
    reason: str  # stopped


@dataclass(frozen=True)
class Remove:
    container: Container
    reason: str  # orphan | scale-down | superseded | rollback | duplicate | volume-lock
    kill: bool = False  # never served by this agent (``World.served``): stopped without a grace period


@dataclass(frozen=True)
class Replace:
    """Remove ``old`` first, then create and start the replica anew (stop-first, or repair)."""

    old: tuple[Container, ...]
    service: str
    replica: int
    config_hash: str
    reason: str  # update | created-leftover | dead


Action = Pull | Create | Start | Remove | Replace


@dataclass(frozen=True)
class NodePlan:
    """The actions of one pass in named buckets, plus what the registrations should point at.

    ``serving`` maps each replica to the container its Consul registration must point at;
    ``rollbacks`` lists services whose start-first update just failed (the caller holds them in
    backoff); ``requeue_after`` asks for another pass that soon (a health wait or a drain).
    """

    pull: tuple[Pull, ...] = ()
    create: tuple[Create, ...] = ()
    start: tuple[Start, ...] = ()
    remove: tuple[Remove, ...] = ()
    replace: tuple[Replace, ...] = ()
    serving: Mapping[ReplicaKey, str] = field(default_factory=dict)
    notes: Mapping[str, Note] = field(default_factory=dict)
    rollbacks: tuple[str, ...] = ()
    requeue_after: float | None = None

    @property
    def actions(self) -> tuple[Action, ...]:
        return (*self.pull, *self.remove, *self.replace, *self.create, *self.start)

    def __bool__(self) -> bool:
        return bool(self.actions)

    def for_service(self, service: str) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if action_service(a) == service)


def action_service(action: Action) -> str:
    if isinstance(action, Start | Remove):
        return action.container.service
    return action.service


def action_kind(action: Action) -> str:
    return type(action).__name__.lower()


def restart_allowed(policy: str, exit_code: int) -> bool:
    """Whether an exited container should be started again under its restart policy."""
    if policy == "no":
        return False
    if policy == "on-failure":
        return exit_code != 0
    return True
