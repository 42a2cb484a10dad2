"""``plan(desired, containers, world) -> NodePlan``: the agent's whole decision, as a pure function.

Level-triggered: it looks at every assignment and every managed container of the node each time and
says what to do next; applying the plan and planning again converges (start-first updates take a few
passes: surge, health, promote, drain, remove). No I/O, no clock: ``world.now`` is passed in.

Per replica ``r`` of a service, the container whose config hash is the desired one is *current*; any
other container of that replica is *old*:

* no container: create it (or pull its image first);
* only old ones: an update. ``start-first`` (while an old one is alive) creates the new one next to
  it; ``stop-first`` replaces (remove old, then create);
* current and old: a start-first update in flight. Once the current one is running and healthy it
  becomes the served one; ``world.drain`` seconds after its registration was switched, the old ones
  go. Healthy: its probe passed, or without a health check it has run ``min_ready`` seconds
  (``minReadySeconds``: a new version that crashes at once never takes over). If it is not healthy
  within ``health_timeout``: with ``auto_rollback`` it is removed and the old one stays
  (``rollbacks``), without it the update goes ahead and the service is ``Unhealthy``.

A container removed that this agent never served (``world.served``: never its replica's registered
container since the agent started) is killed, not stopped with a grace period: nothing was sent to it.
That is a node's stale copy after a power loss (its engine restarted it at boot; the replica runs
elsewhere now) or a surge that never turned healthy; a served one gets its grace to finish requests.

Safety: with ``world.authoritative`` False (assignments from the on-disk cache) nothing is removed or
replaced except never-started leftovers; a service with ``hold`` or an unknown config hash keeps what
runs and gets nothing new; a service with ``fence`` (a stateful volume whose lock is not held here)
has every container removed and nothing new, authoritative or not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from meshop.agent.planning.plan import (
    BROKEN_STATES,
    Container,
    Create,
    NodePlan,
    Note,
    Pull,
    Remove,
    Replace,
    ReplicaKey,
    ServiceTarget,
    Start,
    World,
    restart_allowed,
)

HEALTH_POLL = 0.25  # how soon to look again while a new container's health is pending


def plan(desired: Mapping[str, ServiceTarget], containers: Sequence[Container], world: World) -> NodePlan:
    acc = _Acc()
    by_service: dict[str, list[Container]] = defaultdict(list)
    for container in containers:
        if container.state != "removing":  # Docker is already removing it
            by_service[container.service].append(container)
    for service in sorted(by_service):
        if service not in desired and service not in world.protected and world.authoritative:
            for container in by_service[service]:
                acc.remove(container, "orphan", world)
    for name in sorted(desired):
        _plan_service(desired[name], by_service.get(name, []), world, acc)
    return acc.build()


def _plan_service(svc: ServiceTarget, containers: list[Container], world: World, acc: _Acc) -> None:
    if svc.fence is not None:  # one writer ever: without the volume lock no copy runs here, cache or not
        for container in containers:
            acc.remove(container, "volume-lock", world)
        acc.note(svc.name, svc.fence)
        return
    by_replica: dict[int, list[Container]] = defaultdict(list)
    for container in containers:
        by_replica[container.replica].append(container)
    if world.authoritative:
        for replica in sorted(by_replica):
            if not 0 <= replica < svc.replicas:
                for container in by_replica[replica]:
                    acc.remove(container, "scale-down", world)
    for replica in range(svc.replicas):
        _plan_replica(svc, replica, by_replica.get(replica, []), world, acc)


def _plan_replica(svc: ServiceTarget, replica: int, containers: list[Container], world: World, acc: _Acc) -> None:
    key = (svc.name, replica)
    current = _preferred([c for c in containers if svc.config_hash is not None and c.config_hash == svc.config_hash])
    old = [c for c in containers if c not in current]
    if len(current) > 1 and world.authoritative:
        for duplicate in current[1:]:
            acc.remove(duplicate, "duplicate", world)
    if not current:
        _without_current(svc, key, old, world, acc)
    elif not old:
        _steady(svc, key, current[0], world, acc)
    else:
        _updating(svc, key, current[0], old, world, acc)


def _without_current(svc: ServiceTarget, key: ReplicaKey, old: list[Container], world: World, acc: _Acc) -> None:
    may_create = _may_create(svc, world)
    if not old:
        if may_create:
            acc.create_or_pull(svc, key, "missing", world)
        return
    if not (may_create and world.authoritative):
        _keep(svc, key, old, world, acc)
        return
    if svc.image not in world.images:
        acc.pull_image(svc)
        _keep(svc, key, old, world, acc)
        return
    assert svc.config_hash is not None
    live = _preferred([c for c in old if c.alive])
    if svc.strategy == "start-first" and live:
        acc.create.append(Create(svc.name, key[1], svc.config_hash, "surge"))
        acc.serve(key, live)
        acc.note(svc.name, Note("Updating", f"starting the new container of replica {key[1]} next to the old one"))
        acc.requeue(HEALTH_POLL)
    else:
        acc.replace.append(Replace(tuple(old), svc.name, key[1], svc.config_hash, "update"))


def _steady(svc: ServiceTarget, key: ReplicaKey, current: Container, world: World, acc: _Acc) -> None:
    if current.running:
        acc.serve(key, current)
    elif current.state == "exited":
        acc.restart(svc, current, world)
    elif current.state in BROKEN_STATES and _may_create(svc, world):
        if svc.image not in world.images:
            acc.pull_image(svc)
        else:
            assert svc.config_hash is not None
            reason = "created-leftover" if current.state == "created" else "dead"
            acc.replace.append(Replace((current,), svc.name, key[1], svc.config_hash, reason))


def _updating(
    svc: ServiceTarget, key: ReplicaKey, current: Container, old: list[Container], world: World, acc: _Acc
) -> None:
    healthy = current.running and (
        world.healthy.get(current.id) is True if svc.has_health else world.now - current.started_at >= svc.min_ready
    )
    if not world.authoritative:
        if healthy:
            acc.serve(key, current)
        else:
            acc.serve(key, old)
        _steady(svc, key, current, world, acc)
        return
    live = [c for c in old if c.alive]
    for container in old:
        if not container.alive:
            acc.remove(container, "superseded", world)
    if svc.strategy == "stop-first" or not live:
        for container in live:
            acc.remove(container, "superseded", world)
        _steady(svc, key, current, world, acc)
        return
    # A start-first update in flight: ``current`` is the new container, ``live`` still serve.
    if healthy:
        acc.serve(key, current)
        since = world.promoted.get(current.id)
        if since is not None and world.now >= since + world.drain:
            for container in live:
                acc.remove(container, "superseded", world)
        else:
            acc.requeue(world.drain if since is None else since + world.drain - world.now)
            acc.note(svc.name, Note("Updating", f"replica {key[1]}: new container healthy, draining the old one"))
        return
    waited = world.now - current.created_at
    if waited >= svc.health_timeout:
        if svc.auto_rollback:
            acc.remove(current, "rollback", world)
            acc.serve(key, live)
            acc.rollbacks.append(svc.name)
            acc.note(
                svc.name,
                Note(
                    "UpdateFailed",
                    f"replica {key[1]}: new container not healthy within {svc.health_timeout:g}s; "
                    "rolled back, the old one keeps serving",
                ),
            )
        else:
            if current.running:
                acc.serve(key, current)
            for container in live:
                acc.remove(container, "superseded", world)
            acc.note(svc.name, Note("Unhealthy", f"replica {key[1]}: not healthy within {svc.health_timeout:g}s"))
        return
    acc.serve(key, live)
    if current.state == "exited":
        acc.restart(svc, current, world)
    elif current.state in BROKEN_STATES and _may_create(svc, world) and svc.image in world.images:
        assert svc.config_hash is not None
        acc.replace.append(Replace((current,), svc.name, key[1], svc.config_hash, "created-leftover"))
    acc.note(svc.name, Note("Updating", f"replica {key[1]}: waiting for the new container to become healthy"))
    acc.requeue(min(HEALTH_POLL, max(0.0, svc.health_timeout - waited)))


def _keep(svc: ServiceTarget, key: ReplicaKey, containers: list[Container], world: World, acc: _Acc) -> None:
    """Delete nothing: serve the best running container, start the best stopped one if none is alive."""
    ordered = _preferred(containers)
    acc.serve(key, ordered)
    if ordered and not ordered[0].alive and ordered[0].state == "exited":
        acc.restart(svc, ordered[0], world)


def _may_create(svc: ServiceTarget, world: World) -> bool:
    return svc.config_hash is not None and svc.hold is None and svc.name not in world.service_hold


def _preferred(containers: Iterable[Container]) -> list[Container]:
    """Running first, then other live states, then the newest."""
    return sorted(containers, key=lambda c: (not c.running, not c.alive, -c.created_at, c.name))


class _Acc:
    """Collects one plan; local to a ``plan()`` call, so ``plan`` stays a pure function."""

    def __init__(self) -> None:
        self.pull: list[Pull] = []
        self.create: list[Create] = []
        self.start: list[Start] = []
        self.remove_: list[Remove] = []
        self.replace: list[Replace] = []
        self.serving: dict[ReplicaKey, str] = {}
        self.notes: dict[str, Note] = {}
        self.rollbacks: list[str] = []
        self.requeue_after: float | None = None

    def remove(self, container: Container, reason: str, world: World) -> None:
        kill = world.served is not None and container.id not in world.served
        self.remove_.append(Remove(container, reason, kill))

    def pull_image(self, svc: ServiceTarget) -> None:
        if not any(p.image == svc.image and p.service == svc.name for p in self.pull):
            self.pull.append(Pull(svc.name, svc.image))
        self.note(svc.name, Note("Pulling", f"pulling image {svc.image}"))

    def create_or_pull(self, svc: ServiceTarget, key: ReplicaKey, reason: str, world: World) -> None:
        if svc.image not in world.images:
            self.pull_image(svc)
        else:
            assert svc.config_hash is not None
            self.create.append(Create(svc.name, key[1], svc.config_hash, reason))

    def restart(self, svc: ServiceTarget, container: Container, world: World) -> None:
        if restart_allowed(svc.restart, container.exit_code) and container.id not in world.restart_hold:
            self.start.append(Start(container, "stopped"))

    def serve(self, key: ReplicaKey, candidates: Container | list[Container]) -> None:
        ordered = _preferred([candidates] if isinstance(candidates, Container) else candidates)
        if ordered and ordered[0].running:
            self.serving[key] = ordered[0].id

    def note(self, service: str, note: Note) -> None:
        if service not in self.notes or note.reason in ("UpdateFailed", "Unhealthy"):
            self.notes[service] = note

    def requeue(self, delay: float) -> None:
        delay = max(0.0, delay)
        self.requeue_after = delay if self.requeue_after is None else min(self.requeue_after, delay)

    def build(self) -> NodePlan:
        return NodePlan(
            pull=tuple(self.pull),
            create=tuple(self.create),
            start=tuple(self.start),
            remove=tuple(self.remove_),
            replace=tuple(self.replace),
            serving=dict(self.serving),
            notes=dict(self.notes),
            rollbacks=tuple(self.rollbacks),
            requeue_after=self.requeue_after,
        )
