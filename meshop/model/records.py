"""The records meshop's own components exchange through Consul KV (not written by users).

Each record is a frozen dataclass; its field types are its schema, read and written by one strict codec
(``meshop.model.codec``): ``from_dict`` refuses a value of the wrong type, an unknown state or a wrong
shape with a ``RecordError`` (a ``ValueError``) naming the field, instead of coercing it; unknown keys are
ignored and missing optional fields take their defaults, so a newer writer and an older reader coexist
during an upgrade. Records written by nodes (``nodes/``, ``observed/``, events) are untrusted input: every
reader treats a refused record as it treats an unreadable one (skipped and logged, or rewritten). The KV
key each record lives under is in ``meshop.model.keys``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from meshop.model.codec import Cap, RecordError, decode, encode

# States, as the writers spell them: an unknown one is refused (see codec.py for how one is added)
ContainerHealth = Literal["passing", "warning", "critical", "starting", "none"]
ContainerPhase = Literal["", "Ready", "Starting", "Unhealthy", "CrashLoopBackOff", "Failed", "Completed", "NotRunning"]
ConditionType = Literal["Valid", "Scheduled", "Ready", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]
NodeStateName = Literal["Ready", "Suspect", "NotReady"]
DnsMode = Literal["", "gateways", "direct"]
Problem = Annotated[str, Cap(500)]  # text for people: a longer one is cut, not refused


def dumps(record: Any) -> str:
    """Canonical JSON for a record: stable key order, so unchanged state rewrites identical bytes."""
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))


def _no_constant(name: str) -> Any:
    raise RecordError(f"{name} is not JSON")  # json.loads takes NaN and Infinity unless told otherwise


def loads_json(value: bytes | str) -> dict[str, Any]:
    """A record's JSON object, or RecordError: not UTF-8, not JSON, NaN or Infinity, nested too deep for
    the parser (``[`` * 100000 raises RecursionError, which no reader would catch), not an object."""
    try:
        data = json.loads(value, parse_constant=_no_constant)
    except RecordError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"not JSON: {type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise RecordError("record is not a JSON object")
    return data


class Record:
    """``to_dict`` / ``from_dict`` through the strict codec, for every record below."""

    def to_dict(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """The record in ``data`` (parsed JSON), or RecordError naming the field and the reason."""
        return decode(cls, data)


@dataclass(frozen=True)
class Capacity(Record):
    cpus: float = 0.0
    memory: int = 0  # bytes


@dataclass(frozen=True)
class CaddyLoad(Record):
    """Whether a Caddy took the config it was last given: a gateway's ``gateways/<id>/caddy``, a node's
    ``nodes/<node>.caddy``. Refused: the previous config keeps serving, but nothing new can be; ``since``
    (wall time) is when the refusals began. Written by a gateway or an agent: readers treat it as hostile."""

    loaded: bool = True
    message: Problem = ""  # Caddy's refusal, cut to 500 characters
    since: float = 0.0


DashboardReason = Literal["LoginRequired", "NoLogin", "HostRefused", "Unreachable", "Unexpected", "NotChecked"]


@dataclass(frozen=True)
class DashboardPublication(Record):
    """``gateways/<id>/dashboard``: whether the gateway serves the Gateway document's dashboard host, and
    why not (``reason``: the dashboard's answer to a request without a login). Written by a gateway."""

    host: str
    published: bool = False
    reason: DashboardReason = "NotChecked"
    message: Problem = ""
    since: float = 0.0


@dataclass(frozen=True)
class NodeRecord(Record):
    """``nodes/<node>``, written by the node's agent at start and refreshed when it changes."""

    name: str
    address: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: Capacity = Capacity()
    version: str = ""
    started_at: float = 0.0
    metrics_addr: str = ""
    ingress_port: int = 0  # the node-local Caddy's HTTP port; 0 when the node runs no Caddy
    problem: Problem = ""  # why the agent holds back (e.g. it does not recognise the KV); "" when all is well
    caddy: CaddyLoad | None = field(default=None, metadata={"omit": True})  # the node Caddy's last load


@dataclass(frozen=True)
class Fence(Record):
    """``fences/<node>``: the token the node's agent last confirmed in this KV (see ``meshop.agent.cluster.fence``).

    The agent writes a new random ``token`` (check-and-set) whenever its assignments change and
    remembers it on disk; ``adopt`` is set by ``meshop cluster adopt`` to tell the agent that this KV,
    whatever token it holds, is the right one.
    """

    node: str
    token: str = ""
    epoch: int = 0  # how many tokens the agent wrote here: for people reading the KV
    time: float = 0.0
    adopt: bool = False


@dataclass(frozen=True)
class Assignment(Record):
    """``assignments/<node>/<service>``: what one node must run for one service, fully resolved.

    ``spec`` is ``ServiceSpec.to_dict()`` (any JSON object here: ``ServiceSpec.from_dict`` reads it);
    ``spec_hash`` identifies it (containers carry it as a label); ``generation`` is the ModifyIndex of the
    desired document it came from.
    """

    service: str
    node: str
    replicas: int
    generation: int
    spec_hash: str
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class ContainerState(Record):
    """One managed container as its agent sees it."""

    id: str
    name: str
    replica: int
    image: str
    state: str  # Docker's word: created | running | restarting | exited | dead | paused | ... (Docker's set)
    health: ContainerHealth
    spec_hash: str
    restart_count: int = 0
    host_ports: Mapping[str, int] = field(default_factory=dict)  # "80/tcp" -> 32768
    phase: ContainerPhase = ""
    exit_code: int | None = None  # of its last exit, when it exited since the agent watches it


@dataclass(frozen=True)
class Observed(Record):
    """``observed/<node>/<service>``: what the agent last saw and did for one assignment.

    ``ready`` counts replicas running the assigned spec hash and passing their health check.
    ``error`` is the last error (ImagePullFailed: ..., etc.) with ``reason`` in CamelCase; never a secret.
    """

    service: str
    node: str
    spec_hash: str
    generation: int
    ready: int
    containers: tuple[ContainerState, ...] = ()
    reason: str = ""
    error: str = ""
    last_reconcile: float = 0.0


@dataclass(frozen=True)
class Condition(Record):
    """Kubernetes-style condition; ``last_transition`` changes only when ``status`` changes."""

    type: ConditionType
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition: float = field(default=0.0, metadata={"json": "lastTransitionTime"})
    observed_generation: int = 0


@dataclass(frozen=True)
class ServiceStatus(Record):
    """``status/services/<name>``: the controller's roll-up for one service."""

    name: str
    observed_generation: int
    conditions: tuple[Condition, ...] = ()
    placement: Mapping[str, int] = field(default_factory=dict)  # node -> replicas
    replicas: int = 0  # desired
    ready_replicas: int = 0
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # node -> {ready, replicas, error}
    image: str = ""
    route: str = ""
    spec_hash: str = ""
    created_at: float = 0.0  # when the controller first rolled this service up (``meshop status`` AGE)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


RebalancePolicy = Literal["off", "manual", "auto"]


@dataclass(frozen=True)
class RebalanceMove(Record):
    """One rebalancing move: a replica of ``service`` from ``source`` to ``target`` (start-first)."""

    service: str
    source: str
    target: str
    reason: Problem = ""
    started: float = 0.0  # wall clock, for people (0: not started)
    policy: str = ""  # the service's effective policy: a pending manual move waits for `meshop rebalance`


@dataclass(frozen=True)
class RebalanceStatus(Record):
    """``status/rebalance``: the controller's rebalancing state, rewritten when it changes.

    ``moves`` run now (the controller resumes them after a failover); ``pending`` would run to balance
    the placement (what ``meshop rebalance --dry-run`` shows); ``held`` (service -> why) and ``waiting``
    (node -> why) say what keeps an imbalance from moving; ``handled`` is the ModifyIndex of the last
    ``desired/rebalance`` request carried out.
    """

    policy: RebalancePolicy = "manual"
    moves: tuple[RebalanceMove, ...] = ()
    pending: tuple[RebalanceMove, ...] = ()
    held: Mapping[str, Problem] = field(default_factory=dict)
    waiting: Mapping[str, Problem] = field(default_factory=dict)
    handled: int = 0


@dataclass(frozen=True)
class NodeStatus(Record):
    """``status/nodes/<node>``: the controller's readiness verdict for one node, rewritten on transitions only.

    ``state`` is Ready, Suspect (unhealthy within the grace period: keeps its work, gets none new) or
    NotReady (its movable work is placed elsewhere). ``since`` is when that state began (wall clock, for
    people); for a node that is not Ready it is also when the node was last seen healthy. ``problem``
    says what is wrong.
    """

    name: str
    state: NodeStateName
    since: float
    problem: str = ""


@dataclass(frozen=True)
class Upstream(Record):
    node: str
    address: str
    port: int
    healthy: bool = False


@dataclass(frozen=True)
class RouteRecord(Record):
    """``routes/<host>``: where the gateway sends a route host (validated host and path only)."""

    host: str
    service: str
    path: str = "/"
    upstreams: tuple[Upstream, ...] = ()
    health_path: str = ""  # the service's HTTP health path when it is served on the route's port
    # upstreams kept although their nodes are NotReady (operator/routes.py); written only when true
    fail_open: bool = field(default=False, metadata={"omit": True})


@dataclass(frozen=True)
class Event(Record):
    """One entry of the bounded event log (``events/<time>-<id>``)."""

    time: float
    kind: str  # Scheduled | Rescheduled | Invalid | NodeLost | NodeReady | LeaderElected | ... (open)
    object: str  # e.g. service/whoami, node/n1
    message: str
    component: str = ""  # controller | agent/<node> | gateway


@dataclass(frozen=True)
class DnsStatus(Record):
    """``status/dns``, written by the leading controller's DNS writer: where the records point and how
    the last update went. Never holds the TSIG key's secret or the API key."""

    provider: Annotated[str, Cap(32)] = "none"
    zone: Annotated[str, Cap(255)] = ""
    mode: DnsMode = ""  # "": nothing managed
    gateways: Annotated[tuple[Annotated[str, Cap(63)], ...], Cap(64)] = ()  # ids of the gateways DNS points at
    names: int = 0  # names meshop wants in the zone
    last_update: float = 0.0  # when a change last went through
    last_change: Problem = ""  # what it was
    last_error: Problem = ""  # "" when the last pass succeeded
    conflicts: Annotated[tuple[Annotated[str, Cap(300)], ...], Cap(32)] = ()  # wanted names held by others


@dataclass(frozen=True)
class ReplicaUsage(Record):
    """What one replica used over the agent's last sampling interval (Docker's stats API)."""

    service: str
    replica: int
    cpu: float = 0.0  # percent of one core (200.0: two cores busy), as `docker stats` shows it
    memory: int = 0  # bytes, without the page cache the kernel may drop (as `docker stats` counts)
    memory_limit: int = 0  # bytes; the host's memory when the container has no limit
    rx: float = 0.0  # network bytes per second received
    tx: float = 0.0  # ... and sent
    read: float = 0.0  # block I/O bytes per second read
    write: float = 0.0  # ... and written


@dataclass(frozen=True)
class UsageRecord(Record):
    """``usage/<node>``: the node's and its replicas' usage, written by its agent at most every
    ``interval`` seconds and only when something moved beyond a threshold (or ``refresh`` passed);
    ``sampledAt`` (wall clock) lets readers show a record whose agent stopped as stale, never as zero."""

    node: str
    sampled_at: float
    interval: float = 0.0  # seconds the rates were measured over
    refresh: float = 0.0  # the agent rewrites at least this often: older than ~2x is stale
    cpu: float = 0.0  # percent of one core, the whole host (up to 100 x cpus)
    cpus: int = 0
    memory: int = 0  # bytes in use (MemTotal - MemAvailable)
    memory_total: int = 0
    load1: float = 0.0
    load5: float = 0.0
    load15: float = 0.0
    disk: int = 0  # bytes used on the filesystem of the agent's state (/ by default)
    disk_total: int = 0
    replicas: Annotated[tuple[ReplicaUsage, ...], Cap(1000)] = ()


BackupReason = Literal[
    "",
    "unreachable",
    "wrong-password",
    "disk-full",
    "no-snapshot",
    "locked",
    "failed",
    "prepare-failed",
    "no-password",
    "no-volume",
]


@dataclass(frozen=True)
class SnapshotInfo(Record):
    """One restic snapshot of a volume, as its agent last listed the repository."""

    id: str  # restic's short id (8 hex digits)
    time: float  # wall clock, when the backup ran
    host: Annotated[str, Cap(253)] = ""


@dataclass(frozen=True)
class VolumeBackup(Record):
    """The backups of one stateful volume on the node that holds it (docs/stateful.md, Backups). Times
    are wall clock (records people read); ``failures`` counts failed attempts since the last success."""

    volume: str
    repository: Problem = ""  # the URL with any user:password@ masked
    every: float = 0.0  # seconds between backups
    last_success: float = 0.0  # when the last snapshot was taken (0: none yet by this node)
    snapshot: str = ""  # its short id
    bytes_added: int = 0  # new data it stored (after deduplication)
    total_bytes: int = 0  # the volume's size it read
    files: int = 0
    duration: float = 0.0  # seconds, prepare and retention included
    last_attempt: float = 0.0
    error: Problem = ""  # the last attempt's error ("" after a success); never a secret
    reason: BackupReason = ""
    failures: int = 0
    request: Annotated[str, Cap(64)] = ""  # id of the last `meshop volume backup` request carried out
    snapshots: Annotated[tuple[SnapshotInfo, ...], Cap(100)] = ()  # the newest, oldest first


@dataclass(frozen=True)
class RestoreReport(Record):
    """The last ``meshop volume restore`` request the agent carried out for a service (``id``)."""

    id: Annotated[str, Cap(64)]
    ok: bool = False
    volumes: Annotated[tuple[str, ...], Cap(32)] = ()  # restored
    snapshots: Annotated[tuple[str, ...], Cap(32)] = ()  # the snapshot restored into each (short id)
    kept_aside: Annotated[str, Cap(255)] = ""  # the folder name, beside each volume's, holding what it replaced
    finished: float = 0.0
    duration: float = 0.0
    error: Problem = ""
    reason: BackupReason = ""


@dataclass(frozen=True)
class BackupRecord(Record):
    """``backups/<node>/<service>``: written by the agent of ``node`` for the stateful volumes of a
    service it runs. Untrusted: readers check that ``node`` and ``service`` match the key."""

    service: str
    node: str
    volumes: Annotated[tuple[VolumeBackup, ...], Cap(32)] = ()
    written_at: float = 0.0
    restore: RestoreReport | None = None


@dataclass(frozen=True)
class BackupRequest(Record):
    """``requests/<service>/backup``: ``meshop volume backup`` asks the node holding the service for a
    backup now; the agent carries out each ``id`` once and reports it in ``VolumeBackup.request``."""

    id: Annotated[str, Cap(64)]
    requested_at: float = 0.0


@dataclass(frozen=True)
class MoveRequest(Record):
    """``requests/<service>/move``: ``meshop volume restore --to-node`` moves a stateful service to
    ``node``: the controller places it there only (its copy elsewhere is stopped first, its lock released),
    that node's agent restores ``snapshot`` (``latest`` or an id) into a fresh volume before the first
    start, then deletes the request (one-shot)."""

    id: Annotated[str, Cap(64)]
    node: Annotated[str, Cap(63)]
    snapshot: Annotated[str, Cap(64)] = "latest"
    requested_at: float = 0.0


@dataclass(frozen=True)
class RestoreRequest(Record):
    """``requests/<service>/restore``: ``meshop volume restore`` asks the node holding the service to stop
    it, restore ``snapshot`` (``latest``, or an id) into its volume (``volume``: all when empty), and start
    it again; carried out once per ``id``, reported in ``BackupRecord.restore``."""

    id: Annotated[str, Cap(64)]
    snapshot: Annotated[str, Cap(64)] = "latest"
    volume: Annotated[str, Cap(63)] = ""
    requested_at: float = 0.0
