"""The Docker driver: the only module in meshop that imports ``docker``.

Scoped to one node: it lists, changes and removes only containers and volumes labelled
``meshop.managed=true`` and ``meshop.node=<node>`` (checked again in Python after Docker's filter,
and before every forced removal on a name clash). Every action is idempotent: starting a running
container, removing a missing one, creating a volume that exists are all no-ops. Docker failures
become ``DriverError`` subclasses with one clear line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Set
from datetime import datetime
from typing import Any, TypeVar

from meshop.agent.engine.runtime import (
    ContainerConfig,
    ContainerGone,
    EngineInfo,
    ImagePullFailed,
    ImageRefused,
    NameConflict,
    VolumeInfo,
    VolumeNotOwned,
)
from meshop.agent.planning import labels as L
from meshop.agent.planning.plan import Container
from meshop.agent.planning.redact import Redactor
from meshop.agent.planning.usage import ContainerSample, parse_docker_stats
from meshop.daemon.backoff import BackoffPolicy
from meshop.daemon.retry import retry_call
from meshop.errors import DriverError
from meshop.libs import blocked, without_charset_detection
from meshop.model.digits import parse_uint

# The Docker SDK imports paramiko (and with it cryptography, ~20 MB resident) at import time, for an
# ssh:// engine only. The agent talks to a local socket: load the SDK without it, and add the SSH
# transport back in ``_enable_ssh`` when an ssh:// engine is asked for. (And requests without its
# character-set detector: ``meshop.libs``.)
with without_charset_detection(), blocked("paramiko"):
    import docker
    import docker.errors
    import docker.types
    from docker.utils import parse_repository_tag

log = logging.getLogger(__name__)


class _PullAttemptFailed(Exception):
    """One pull attempt failed (retried by ``retry_call``); its text is the short reason."""


T = TypeVar("T")
# kept connections to the engine: the executor's WORKERS (16) acting at once, the pulls and the pass's own
# reads; a caller beyond it still gets a connection, which is closed afterwards (and urllib3 warns)
POOL_SIZE = 32
Scrub = Callable[[str], str]


def _as_is(text: str) -> str:
    return text


class DockerDriver:
    def __init__(
        self,
        node: str,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        pull_attempts: int = 3,
        pull_backoff: float = 0.5,
    ) -> None:
        self.node = node
        self.pull_attempts = pull_attempts
        self.pull_backoff = pull_backoff
        self._base_url = base_url
        try:
            _enable_ssh(base_url)
            if base_url:
                self.client = docker.DockerClient(base_url=base_url, timeout=int(timeout), max_pool_size=POOL_SIZE)
            else:
                self.client = docker.from_env(timeout=int(timeout), max_pool_size=POOL_SIZE)
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot reach the Docker engine ({_short(exc)})") from None
        self.api = self.client.api
        self._inspect_cache: dict[str, tuple[tuple[str, str], dict]] = {}
        self._image_claims: dict[str, list[str]] = {}  # image id -> identity labels the image sets itself
        # one-shot stats need API 1.41 (Docker 20.10); older engines wait ~1 s for a second sample
        self._one_shot: bool | None = _api_at_least(self.api.api_version, (1, 41)) or None

    def close(self) -> None:
        self.client.close()

    # -- observation ---------------------------------------------------------------------------------

    def list_managed(self) -> list[Container]:
        raw = self._call("listing containers", lambda: self.api.containers(all=True, filters=self._filters()))
        found: list[Container] = []
        seen: set[str] = set()
        for item in raw:
            if not L.owned_by(item.get("Labels"), self.node):
                continue  # Docker filtered already; never trust a single check with deletions at stake
            if self._claims(str(item.get("ImageID", ""))):
                continue  # its meshop labels may be its image's: never ours (the agent never creates such)
            seen.add(item["Id"])
            details = self._details(item)
            if details is None:
                continue
            found.append(_container(item, details))
        for stale in set(self._inspect_cache) - seen:
            del self._inspect_cache[stale]
        return found

    def kill_unlocked(self, allowed: Set[str]) -> list[str]:
        """SIGKILL every running stateful container of this node whose service is not in ``allowed``
        (the volume lock keeper's watchdog, docs/stateful.md); the names of those it killed."""
        filters = {"label": [*L.owner_filters(self.node), f"{L.STATEFUL}=true"], "status": "running"}
        raw = self._call("listing stateful containers", lambda: self.api.containers(filters=filters))
        killed = []
        for item in raw:
            labels = item.get("Labels") or {}
            if not L.owned_by(labels, self.node) or labels.get(L.SERVICE) in allowed:
                continue
            try:
                cid = str(item["Id"])
                self._call(f"killing {cid[:12]}", lambda cid=cid: self.api.kill(cid))
            except ContainerGone:
                continue
            except DriverError as exc:
                if "is not running" not in str(exc):
                    raise
            killed.append(str(labels.get(L.SERVICE, "")))
        return killed

    def _details(self, item: dict) -> dict | None:
        """``docker inspect`` of one listed container, cached while its state and status text stay the same.

        Status texts like "Up 3 seconds" repeat across restarts of a crash-looping container, so only
        texts in minutes or longer ("Up 2 hours") are trusted to mean "nothing changed".
        """
        status = str(item.get("Status", ""))
        key = (str(item.get("State", "")), status)
        cached = self._inspect_cache.get(item["Id"])
        if cached and cached[0] == key and "second" not in status:
            return cached[1]
        try:
            details = self._call("inspecting a container", lambda: self.api.inspect_container(item["Id"]))
        except ContainerGone:
            return None
        self._inspect_cache[item["Id"]] = (key, details)
        return details

    def _claims(self, image_id: str) -> list[str]:
        """The identity labels image ``image_id`` sets itself, cached by id (an id names fixed content)."""
        if image_id not in self._image_claims:
            try:
                details = self._call("inspecting an image", lambda: self.api.inspect_image(image_id))
            except ContainerGone:
                return []  # the image is gone; its containers keep their labels, checked on the next listing
            claims = L.claims_meshop((details.get("Config") or {}).get("Labels"))
            if claims:
                log.warning("image %s sets %s itself: its containers are never taken for meshop's", image_id, claims)
            self._image_claims[image_id] = claims
        return self._image_claims[image_id]

    def image_present(self, image: str) -> bool:
        try:
            self._call(f"inspecting image {image}", lambda: self.api.inspect_image(image))
            return True
        except ContainerGone:  # NotFound
            return False

    def info(self) -> EngineInfo:
        data = self._call("reading engine info", self.api.info)
        return EngineInfo(cpus=float(data.get("NCPU", 0)), memory=int(data.get("MemTotal", 0)))

    def stats(self, container_id: str) -> ContainerSample | None:
        """One-shot stats (API 1.41+: the engine answers at once instead of waiting for a second sample);
        the answer is hostile input, checked by ``parse_docker_stats``."""
        if container_id not in self._inspect_cache:
            return None  # only containers the last listing found to be this node's managed ones
        data = self._call(
            f"reading stats of {container_id[:12]}",
            lambda: self.api.stats(container_id, decode=False, stream=False, one_shot=self._one_shot),
        )
        return parse_docker_stats(data)

    def ping(self) -> bool:
        try:
            return bool(self.api.ping())
        except (docker.errors.DockerException, OSError):
            return False

    # -- actions -------------------------------------------------------------------------------------

    def pull(self, image: str) -> None:
        """Pull ``image`` with retries and exponential backoff; ``ImagePullFailed`` when all attempts fail."""
        repository, tag = parse_repository_tag(image)

        def attempt() -> None:
            try:
                for chunk in self.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise docker.errors.APIError(str(chunk["error"]))
                present = self.image_present(image)
            except (docker.errors.DockerException, OSError) as exc:
                raise _PullAttemptFailed(_short(exc)) from None
            if not present:
                raise _PullAttemptFailed("pull finished but the image is not there")

        def retrying(number: int, exc: BaseException, delay: float) -> None:
            log.info(
                "pull of %s failed (attempt %d/%d: %s); retrying in %.1fs",
                image,
                number,
                self.pull_attempts,
                exc,
                delay,
            )

        # exact delays, as the holds that follow a failed pull: three attempts are no herd worth spreading
        policy = BackoffPolicy(base=self.pull_backoff, maximum=max(self.pull_backoff, 30.0))
        try:
            retry_call(
                attempt, attempts=self.pull_attempts, policy=policy, retry_on=(_PullAttemptFailed,), on_retry=retrying
            )
        except _PullAttemptFailed as exc:
            raise ImagePullFailed(f"pulling {image} failed after {self.pull_attempts} attempts: {exc}") from None

    def create_and_start(self, config: ContainerConfig) -> str:
        """Create and start; on a name clash with our own leftover, remove it and retry once.

        A container whose start fails is removed again, so no Created-state leftover remains (one
        left by a crash of the agent itself is cleaned up by the planner).
        """
        if not (L.owned_by(config.labels, self.node)):
            raise DriverError(f"refusing to create {config.name}: its labels do not mark it as this node's")
        for mount in config.mounts:
            if mount.kind == "volume" and mount.source:
                self._ensure_volume(mount.source, dict(mount.volume_labels))
        image = self._call(f"inspecting image {config.image}", lambda: self.api.inspect_image(config.image))
        if claims := self._claims(str(image.get("Id", ""))):
            raise ImageRefused(
                f"image {config.image} sets {', '.join(claims)} itself; meshop does not run images that "
                "claim its labels (a container of it could pass for another service's)"
            )
        scrub = Redactor(config.secrets)  # Docker and runc echo env entries they refuse: before shortening
        began = time.monotonic()
        try:
            container_id = self._create(config, scrub)
        except NameConflict:
            self._clear_name(config.name)
            container_id = self._create(config, scrub)
        created = time.monotonic()
        try:
            self._call(f"starting {config.name}", lambda: self.api.start(container_id), scrub)
        except DriverError:
            self._remove_quietly(container_id)  # leave no Created-state leftover behind
            raise
        log.debug(
            "%s: created in %.0f ms, started in %.0f ms",
            config.name,
            (created - began) * 1000,
            (time.monotonic() - created) * 1000,
        )
        return container_id

    def start(self, container_id: str) -> None:
        self._call(f"starting container {container_id[:12]}", lambda: self.api.start(container_id))

    def remove(self, container_id: str, grace: float = 10.0) -> None:
        """Stop (SIGTERM, then SIGKILL after ``grace``) and remove with its anonymous volumes; gone is fine."""
        try:
            self._call(f"stopping {container_id[:12]}", lambda: self.api.stop(container_id, timeout=int(grace)))
        except ContainerGone:
            return
        except DriverError as exc:
            log.info("stopping %s failed (%s); removing it by force", container_id[:12], exc)
        try:
            self._call(
                f"removing {container_id[:12]}", lambda: self.api.remove_container(container_id, v=True, force=True)
            )
        except ContainerGone:
            return
        except DriverError as exc:
            if "already in progress" in str(exc):
                return
            raise
        self._inspect_cache.pop(container_id, None)

    def list_volumes(self) -> list[VolumeInfo]:
        raw = self._call("listing volumes", lambda: self.api.volumes(filters={"label": L.owner_filters(self.node)}))
        volumes = (raw or {}).get("Volumes") or []
        return [
            VolumeInfo(v["Name"], dict(v.get("Labels") or {}))
            for v in volumes
            if L.owned_by(v.get("Labels"), self.node)
        ]

    def remove_volume(self, name: str) -> bool:
        """Remove one of this node's volumes; False when it is still in use or already gone."""
        try:
            details = self._call(f"inspecting volume {name}", lambda: self.api.inspect_volume(name))
        except ContainerGone:
            return False
        if not L.owned_by(details.get("Labels"), self.node):
            raise DriverError(f"refusing to remove volume {name}: not this node's")
        try:
            self._call(f"removing volume {name}", lambda: self.api.remove_volume(name))
            return True
        except ContainerGone:
            return False
        except DriverError as exc:
            if "in use" in str(exc):
                return False
            raise

    # -- backups of stateful volumes (meshop/agent/backup/) -------------------------------------------

    def volume_mountpoint(self, name: str, service: str, volume: str) -> str:
        """The host folder of volume ``name``: only this node's volume ``volume`` of ``service``."""
        details = self._call(f"inspecting volume {name}", lambda: self.api.inspect_volume(name))
        found = details.get("Labels") or {}
        if not L.owned_by(found, self.node) or found.get(L.SERVICE) != service or found.get(L.VOLUME) != volume:
            raise VolumeNotOwned(f"volume {name} is not volume {volume} of service {service} on this node")
        mountpoint = details.get("Mountpoint")
        if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
            raise DriverError(f"volume {name} has no local folder (driver {details.get('Driver')!r})")
        return mountpoint

    def exec_in(self, container_id: str, argv: list[str], timeout: float) -> int:
        """Run ``argv`` in the running container and wait up to ``timeout`` seconds for its exit code
        (``DriverError`` when it does not end in time; it is left to finish on its own)."""
        short = container_id[:12]
        created = self._call(
            f"exec in {short}", lambda: self.api.exec_create(container_id, argv, stdout=False, stderr=False)
        )
        exec_id = created["Id"]
        self._call(f"exec in {short}", lambda: self.api.exec_start(exec_id, detach=True))
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            state = self._call(f"exec in {short}", lambda: self.api.exec_inspect(exec_id))
            if not state.get("Running"):
                code = state.get("ExitCode")
                return code if isinstance(code, int) and not isinstance(code, bool) else -1
            if time.monotonic() >= deadline:
                raise DriverError(f"the command in {short} did not finish within {timeout:g}s")
            time.sleep(delay)
            delay = min(1.0, delay * 2)

    def stop(self, container_id: str, grace: float) -> None:
        """Stop without removing (SIGTERM, then SIGKILL after ``grace``); ``start`` runs it again."""
        self._call(f"stopping {container_id[:12]}", lambda: self.api.stop(container_id, timeout=int(grace)))

    def events(self) -> DockerEvents:
        """A blocking stream of this node's managed-container events; ``close()`` ends it from another thread."""
        client = (
            docker.DockerClient(base_url=self._base_url, timeout=None)  # type: ignore[arg-type]
            if self._base_url
            else docker.from_env(timeout=None)  # type: ignore[arg-type]
        ).api
        filters = {"type": "container", "label": L.owner_filters(self.node)}
        try:
            stream = client.events(decode=True, filters=filters)
        except (docker.errors.DockerException, OSError) as exc:
            client.close()
            raise DriverError(f"cannot follow Docker events ({_short(exc)})") from None
        return DockerEvents(client, stream)

    # -- helpers -------------------------------------------------------------------------------------

    def _filters(self) -> dict[str, Any]:
        return {"label": L.owner_filters(self.node)}

    def _create(self, config: ContainerConfig, scrub: Scrub = _as_is) -> str:
        host_config = self.api.create_host_config(
            port_bindings={f"{p.container}/{p.protocol}": (p.host_ip, p.host_port) for p in config.ports}
            if config.network_mode != "host"
            else None,
            mounts=[docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in config.mounts],
            restart_policy={"Name": config.restart} if config.restart != "no" else None,
            mem_limit=config.memory,
            memswap_limit=config.memory,  # the memory limit is the limit: no swap on top of it
            nano_cpus=config.nano_cpus,
            pids_limit=config.pids,
            privileged=config.privileged,
            network_mode=config.network_mode,
            read_only=config.read_only_root or None,
            security_opt=["no-new-privileges:true"] if config.no_new_privileges else None,
            cap_drop=list(config.cap_drop) or None,
            cap_add=list(config.cap_add) or None,
        )
        try:
            created = self.api.create_container(
                config.image,
                name=config.name,
                command=list(config.command) if config.command is not None else None,
                entrypoint=list(config.entrypoint) if config.entrypoint is not None else None,
                user=config.user or None,
                environment=list(config.env),
                labels=dict(config.labels),
                ports=[(p.container, p.protocol) for p in config.ports],
                host_config=host_config,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise NameConflict(f"container name {config.name} is in use") from None
            raise DriverError(f"creating {config.name} failed: {_api_message(exc, scrub)}") from None
        except (docker.errors.DockerException, OSError) as exc:
            raise DriverError(f"creating {config.name} failed: {_short(scrub(str(exc)))}") from None
        return str(created["Id"])

    def _clear_name(self, name: str, wait: float = 10.0) -> None:
        """Free ``name`` if (and only if) this node's own container holds it, e.g. a leftover of a crash
        or one Docker is still removing; waits until the name is free."""
        deadline = time.monotonic() + wait
        while True:
            try:
                details = self._call(f"inspecting {name}", lambda: self.api.inspect_container(name))
            except ContainerGone:
                return  # free
            if not L.owned_by(details.get("Config", {}).get("Labels"), self.node):
                raise NameConflict(f"container name {name} is taken by a container meshop does not manage; rename it")
            if time.monotonic() >= deadline:
                raise NameConflict(f"container name {name} is still held by {details['Id'][:12]}")
            log.info("removing our own leftover %s that holds the name", name)
            self._remove_quietly(details["Id"])
            time.sleep(0.05)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, v=True, force=True)
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("could not remove %s: %s", container_id[:12], _short(exc))

    def ensure_volume(self, name: str, labels: dict[str, str]) -> str:
        """Make this node's volume ``name`` when missing (refusing one that is not its); its host folder."""
        self._ensure_volume(name, labels)
        return self.volume_mountpoint(name, labels[L.SERVICE], labels[L.VOLUME])

    def _ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        try:
            details = self.api.inspect_volume(name)
        except docker.errors.NotFound:
            self._call(f"creating volume {name}", lambda: self.api.create_volume(name, labels=labels))
            return
        except (docker.errors.DockerException, OSError) as exc:
            raise DriverError(f"inspecting volume {name} failed: {_short(exc)}") from None
        found = details.get("Labels") or {}
        if not L.owned_by(found, self.node) or any(found.get(k) != labels.get(k) for k in (L.SERVICE, L.VOLUME)):
            raise VolumeNotOwned(
                f"volume {name} exists but is not volume {labels.get(L.VOLUME)} of service "
                f"{labels.get(L.SERVICE)} on this node ({L.describe_owner(found)}); refusing to mount it"
            )

    def _call(self, what: str, fn: Callable[[], T], scrub: Scrub = _as_is) -> T:
        try:
            return fn()
        except docker.errors.NotFound:
            raise ContainerGone(f"{what}: not found") from None
        except docker.errors.APIError as exc:
            raise DriverError(f"{what} failed: {_api_message(exc, scrub)}") from None
        except (docker.errors.DockerException, OSError) as exc:
            raise DriverError(f"{what} failed: Docker engine unreachable ({_short(scrub(str(exc)))})") from None


class DockerEvents:
    """Iterates decoded events; ``close()`` from another thread makes the iteration end."""

    def __init__(self, client: docker.APIClient, stream: Any) -> None:
        self._client = client
        self._stream = stream

    def __iter__(self) -> Iterator[dict]:
        try:
            yield from self._stream
        except (docker.errors.DockerException, OSError, ValueError) as exc:
            raise DriverError(f"Docker events stream broke ({_short(exc)})") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead stream may fail in many ways; nothing to do
            self._stream.close()
        self._client.close()


def _container(item: dict, details: dict) -> Container:
    labels = item.get("Labels") or {}
    state = details.get("State") or {}
    try:
        replica = int(labels.get(L.REPLICA, "-1"))
    except ValueError:
        replica = -1
    try:
        generation = int(labels.get(L.GENERATION, "0"))
    except ValueError:
        generation = 0
    ports: dict[str, int] = {}
    for port in item.get("Ports") or ():
        if port.get("PublicPort"):
            ports.setdefault(f"{port['PrivatePort']}/{port.get('Type', 'tcp')}", int(port["PublicPort"]))
    names = item.get("Names") or [""]
    return Container(
        id=item["Id"],
        name=names[0].lstrip("/"),
        service=labels.get(L.SERVICE, ""),
        replica=replica,
        spec_hash=labels.get(L.SPEC_HASH, ""),
        config_hash=labels.get(L.CONFIG_HASH, ""),
        generation=generation,
        image=str(item.get("Image", "")),
        state=str(item.get("State", "")),
        created_at=float(item.get("Created", 0)),
        started_at=_timestamp(state.get("StartedAt")),
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(details.get("RestartCount") or 0),
        host_ports=ports,
    )


def _timestamp(value: str | None) -> float:
    """Docker's RFC 3339 timestamps with nanoseconds -> Unix time; 0 for the zero time."""
    if not value or value.startswith("0001-"):
        return 0.0
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text + "+00:00").timestamp()
    except ValueError:
        return 0.0


def _api_message(exc: docker.errors.APIError, scrub: Scrub = _as_is) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return _short(scrub(str(explanation or exc)))


def _short(exc: object) -> str:
    return " ".join(str(exc).split())[:300]


def _api_at_least(version: object, wanted: tuple[int, int]) -> bool:
    major, _, minor = str(version).partition(".")
    parsed = (parse_uint(major, limit=999), parse_uint(minor, limit=999))
    return parsed[0] is not None and parsed[1] is not None and (parsed[0], parsed[1]) >= wanted


def _enable_ssh(base_url: str | None) -> None:
    """The SDK's SSH transport (paramiko), loaded only for an ssh:// engine; see the import above."""
    url = base_url or os.environ.get("DOCKER_HOST", "")
    if not url.startswith("ssh://"):
        return
    import docker.api.client
    from docker.transport.sshconn import SSHHTTPAdapter

    docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter  # type: ignore[attr-defined]
