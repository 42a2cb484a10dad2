"""From this pass's assignments to the planner's input: parse, check, combine with secrets and policy; pure.

``Parsed`` is one assignment with its checked spec (``None`` and a ``note`` when the spec is invalid:
nothing of it reaches Docker). ``Intake`` parses each distinct assignment once (a spec checks in
milliseconds, a node holds many and passes run often). ``service_targets`` turns the parsed
assignments, their resolved secrets and the host paths the engine resolved for their bind mounts into
the planner's ``ServiceTarget``s; ``config_builder`` gives the executor each replica's full Docker
configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from meshop.agent.planning.config import ContainerConfig
from meshop.agent.planning.desired import check_assignment, container_config, desired_service, secret_keys
from meshop.agent.planning.plan import Note, ServiceTarget
from meshop.model import Policy, ServiceSpec
from meshop.model.records import Assignment

Secrets = Mapping[str, dict[str, str] | Note]  # service -> env values, or why they are unknown
Binds = Mapping[str, tuple[dict[str, str], str | None]]  # service -> (hostPath -> resolved path, refusal)

PARSE_CACHE = 4096


@dataclass(frozen=True)
class Parsed:
    assignment: Assignment
    spec: ServiceSpec | None
    note: Note | None  # InvalidAssignment


class Intake:
    """Parses assignments, remembering each result by its content."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # meshop's KV prefix: a service's secret keys must be under it
        self._cache: dict[str, tuple[ServiceSpec | None, Note | None]] = {}

    def parse(self, assignments: Mapping[str, Assignment]) -> dict[str, Parsed]:
        return {name: self._parse(a) for name, a in assignments.items()}

    def _parse(self, assignment: Assignment) -> Parsed:
        key = f"{assignment.service}\0{assignment.spec_hash}\0{sorted(assignment.spec.items())!r}"
        cached = self._cache.get(key)
        if cached is None:
            cached = check_assignment(assignment, self.prefix)
            self._cache[key] = cached
            if len(self._cache) > PARSE_CACHE:
                self._cache.clear()
        return Parsed(assignment, *cached)


def specs_of(parsed: Mapping[str, Parsed]) -> dict[str, ServiceSpec]:
    """The valid specs, by service."""
    return {name: item.spec for name, item in parsed.items() if item.spec is not None}


def service_targets(
    parsed: Mapping[str, Parsed],
    secrets: Secrets,
    binds: Binds,
    policy: Policy,
    fences: Mapping[str, Note] | None = None,
) -> dict[str, ServiceTarget]:
    """What the planner works towards, per valid assignment: held when its secrets are unknown or its
    bind mounts refused, with an unknown config hash while secrets cannot be read; fenced (no copy
    may run) when ``fences`` names it: a stateful volume whose lock is not held here."""
    targets: dict[str, ServiceTarget] = {}
    for name, item in parsed.items():
        if item.spec is None:
            continue
        values = secrets.get(name)
        hold = values if isinstance(values, Note) else None
        refusal = binds.get(name, ({}, None))[1]
        if refusal is not None and hold is None:
            hold = Note("PolicyRefused", refusal)
        known = values if isinstance(values, dict) else ({} if not secret_keys(item.spec) else None)
        target = desired_service(item.assignment, item.spec, policy, known, hold)
        fence = (fences or {}).get(name)
        targets[name] = replace(target, fence=fence) if fence is not None else target
    return targets


def config_builder(
    node: str, parsed: Mapping[str, Parsed], secrets: Secrets, binds: Binds, publish: str
) -> Callable[[str, int, str], ContainerConfig]:
    """(service, replica, config hash) -> that replica's container configuration, secrets included."""

    def build(service: str, replica: int, config_hash: str) -> ContainerConfig:
        item = parsed[service]
        assert item.spec is not None
        values = secrets.get(service)
        return container_config(
            node,
            item.assignment,
            item.spec,
            replica,
            config_hash,
            values if isinstance(values, dict) else {},
            publish,
            binds.get(service, ({}, None))[0],
        )

    return build
