"""An in-memory container engine that applies plans: for planner and loop unit tests only.

Every behaviour that touches Docker or Consul is also proven against the real engine and Consul in
``tests/integration/agent``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from meshop.agent.planning.plan import (
    Container,
    Create,
    NodePlan,
    Pull,
    Remove,
    Replace,
    ReplicaKey,
    ServiceTarget,
    Start,
)


@dataclass
class FakeEngine:
    containers: dict[str, Container] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)
    registered: dict[ReplicaKey, str] = field(default_factory=dict)  # replica -> container id
    promoted: dict[str, float] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, container: Container) -> Container:
        self.containers[container.id] = container
        return container

    def apply(self, plan: NodePlan, desired: dict[str, ServiceTarget], now: float) -> None:
        for action in plan.actions:
            if isinstance(action, Pull):
                self.images.add(action.image)
            elif isinstance(action, Remove):
                self.containers.pop(action.container.id, None)
            elif isinstance(action, Replace):
                for old in action.old:
                    self.containers.pop(old.id, None)
                self._create(desired[action.service], action.replica, action.config_hash, now)
            elif isinstance(action, Create):
                self._create(desired[action.service], action.replica, action.config_hash, now)
            elif isinstance(action, Start):
                self.containers[action.container.id] = replace(action.container, state="running", started_at=now)
        # what the registration sync does after the actions: point replicas at their serving container
        for key, container_id in plan.serving.items():
            if self.registered.get(key) != container_id:
                self.promoted[container_id] = now
        self.registered = dict(plan.serving)

    def _create(self, svc: ServiceTarget, replica: int, config_hash: str, now: float) -> None:
        number = next(self._ids)
        self.add(
            Container(
                id=f"new{number}",
                name=f"{svc.name}-{replica}-{config_hash}-{number}",
                service=svc.name,
                replica=replica,
                spec_hash=svc.spec_hash,
                config_hash=config_hash,
                generation=svc.generation,
                image=svc.image,
                state="running",
                created_at=now,
                started_at=now,
            )
        )
