"""Debian 12 "VPS" containers with systemd as PID 1: a gateway and nodes for the end-to-end install test.

    python -m tests.support.systemd_hosts up|down      # by hand (state in .dev/install-e2e/)

What a user's fresh VPS is, as far as a container can be one (docs/install.md, ENVIRONMENT.md):
- the image is debootstrap's Debian 12 with systemd, dbus and sshd (``scripts/build-systemd-vps.sh``,
  cached under ``.dev/vps/``), started as ``/lib/systemd/systemd`` with only ``SYS_ADMIN`` added;
- sshd's host keys are made by a first-boot oneshot; the test's client key is root's authorized_keys;
- every host has a fixed address on a Docker network ``100.64.0.0/24``, so the docs' tailnet addresses
  are typed as written, and reaches the Debian mirror through the engine's NAT (apt works);
- a node's Docker engine is the user's own: a ``dockerd`` on this machine inside the container's network
  namespace (no engine can run inside an unprivileged container), its socket and the ``docker`` CLI
  bind-mounted in, ``/run/docker.sock`` a link to it (tmpfiles.d), so published ports live on the
  node's own address.

Every container, network and ``dockerd`` started here is recorded (ID or PID) in ``state.json`` and
stopped by that ID or PID; ``down`` works from that file after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".dev" / "install-e2e"
SUBNET = "100.64.0.0/24"
BRIDGE_GATEWAY = "100.64.0.254"  # the engine's side of the network; .1 is the docs' gateway host
LABEL = "meshop.test=install-e2e"
# The docs' hosts: name -> (tailnet address, gets a Docker engine of its own)
HOSTS = {"gw": ("100.64.0.1", False), "n1": ("100.64.0.11", True), "n2": ("100.64.0.12", True)}
ENGINE_LINK = "L /run/docker.sock - - - - /mnt/engine/docker.sock\n"


def sh(*args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, timeout=timeout, **kw)


@dataclass
class Host:
    name: str
    address: str
    container: str = ""  # the container's ID
    fingerprint: str = ""  # SHA256:… of its ed25519 host key
    engine_pid: int = 0  # the node's own dockerd (0: none)

    def engine_dir(self) -> Path:
        return WORK / "engines" / self.name

    @property
    def docker_host(self) -> str:
        return f"unix://{self.engine_dir() / 'sock' / 'docker.sock'}"

    def exec(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return sh("docker", "exec", self.container, *args, check=check, timeout=timeout)

    def docker(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
        """The node's own engine, from this machine."""
        return sh("docker", "-H", self.docker_host, *args, check=check, **kw)


@dataclass
class Fleet:
    image: str
    network: str = ""  # the Docker network's ID
    hosts: dict[str, Host] = field(default_factory=dict)

    # -- state file: what was started, so that it can be stopped by ID/PID after a crash --------------

    def save(self) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        data = {"image": self.image, "network": self.network, "hosts": {n: asdict(h) for n, h in self.hosts.items()}}
        (WORK / "state.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls) -> Fleet | None:
        try:
            data = json.loads((WORK / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(data["image"], data["network"], {n: Host(**h) for n, h in data["hosts"].items()})

    # -- up ------------------------------------------------------------------------------------------

    def up(self, client_key: Path) -> None:
        self.network = sh(
            "docker", "network", "create", "--subnet", SUBNET, "--gateway", BRIDGE_GATEWAY, "--label", LABEL,
            f"meshop-tailnet-{os.getpid()}",
        ).stdout.strip()  # fmt: skip
        self.save()
        for name, (address, engine) in HOSTS.items():
            self.hosts[name] = host = Host(name, address)
            self._run(host, client_key, engine)
            self.save()
        for host in self.hosts.values():
            if host.name in _engine_hosts():
                self.start_engine(host)
        for host in self.hosts.values():
            self.wait_ssh(host)
        self.save()

    def _run(self, host: Host, client_key: Path, engine: bool) -> None:
        mounts = ["-v", f"{client_key}:/root/.ssh/authorized_keys:ro"]
        if engine:
            shutil.rmtree(host.engine_dir(), ignore_errors=True)  # a fresh VPS: no images or containers of a past run
            sock = host.engine_dir() / "sock"
            sock.mkdir(parents=True, exist_ok=True)
            link = host.engine_dir() / "engine.conf"
            link.write_text(ENGINE_LINK)
            mounts += ["-v", f"{sock}:/mnt/engine", "-v", f"{link}:/etc/tmpfiles.d/meshop-test-engine.conf:ro"]
            mounts += ["-v", "/usr/bin/docker:/usr/bin/docker:ro"]  # the user's engine comes with its CLI
        host.container = sh(
            "docker", "run", "-d", "--name", f"meshop-e2e-{host.name}-{os.getpid()}", "--hostname", host.name,
            "--label", LABEL, "--network", self.network, "--ip", host.address,
            "--cap-add", "SYS_ADMIN", "--cgroupns=private", "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "--stop-signal", "SIGRTMIN+3",  # systemd's "halt"; SIGTERM would only make it re-execute
            "-e", "container=docker", *mounts, self.image, "/lib/systemd/systemd",
        ).stdout.strip()  # fmt: skip

    def container_pid(self, host: Host) -> int:
        return int(sh("docker", "inspect", "-f", "{{.State.Pid}}", host.container).stdout.strip())

    def start_engine(self, host: Host) -> None:
        """The node's own dockerd, on this machine inside the container's network namespace."""
        d = host.engine_dir()
        for sub in ("data", "exec", "sock"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (d / "sock" / "docker.sock").unlink()  # a stale one from before a reboot
        log = open(d / "dockerd.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/proc/{self.container_pid(host)}/ns/net", "dockerd", "--data-root", str(d / "data"),
                 "--exec-root", str(d / "exec"), "-H", host.docker_host, "--pidfile", str(d / "docker.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        host.engine_pid = proc.pid  # nsenter execs dockerd: the same PID
        self.save()
        _wait(lambda: host.docker("info", check=False, timeout=10).returncode == 0, 60, f"{host.name}'s engine")

    def stop_engine(self, host: Host) -> None:
        if host.engine_pid:
            _stop_pid(host.engine_pid, 30)
            host.engine_pid = 0
            self.save()

    def wait_ssh(self, host: Host, timeout: float = 120) -> None:
        """sshd answers on the host's address and its host key is known (made on first boot)."""

        def ready() -> bool:
            found = host.exec("ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub", check=False)
            if found.returncode != 0:
                return False
            host.fingerprint = found.stdout.split()[1]
            with socket.create_connection((host.address, 22), timeout=2) as conn:
                return conn.recv(4).startswith(b"SSH-")

        _wait(ready, timeout, f"sshd on {host.name}")

    def reboot(self, host: Host) -> None:
        """Power the node off and on: its engine goes down with it and comes back in the new namespace."""
        self.stop_engine(host)
        sh("docker", "stop", "-t", "30", host.container)
        sh("docker", "start", host.container)
        if host.name in _engine_hosts():
            self.start_engine(host)
        self.wait_ssh(host)

    # -- down ----------------------------------------------------------------------------------------

    def down(self) -> None:
        for host in self.hosts.values():
            self.stop_engine(host)
            if host.container:
                sh("docker", "rm", "-f", host.container, check=False)
        if self.network:
            sh("docker", "network", "rm", self.network, check=False)
        (WORK / "state.json").unlink(missing_ok=True)


def _engine_hosts() -> set[str]:
    return {name for name, (_, engine) in HOSTS.items() if engine}


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, subprocess.SubprocessError) as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f" ({last!r})" if last else ""))


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM exactly ``pid``, SIGKILL after ``timeout``; reaps it when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        if not Path(f"/proc/{pid}").exists() or "\nState:\tZ" in _status(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def image() -> str:
    """The VPS image, built or imported from the cached root filesystem when missing."""
    return sh("bash", str(REPO / "scripts" / "build-systemd-vps.sh"), timeout=1200).stdout.strip().splitlines()[-1]


def client_key() -> Path:
    """The test's SSH key (kept under .dev/install-e2e/ across runs)."""
    key = WORK / "id_ed25519"
    if not key.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "meshop-install-e2e", "-f", str(key))
    return key


def main(argv: list[str]) -> int:
    if argv[1:] == ["up"]:
        if Fleet.load():
            print("already up (state in .dev/install-e2e/state.json); `down` first", file=sys.stderr)
            return 1
        fleet = Fleet(image())
        fleet.up(client_key().with_suffix(".pub"))
        for host in fleet.hosts.values():
            print(f"{host.name} {host.address} {host.fingerprint} {host.container[:12]}")
        return 0
    if argv[1:] == ["down"]:
        fleet = Fleet.load()
        if fleet:
            fleet.down()
        return 0
    print(__doc__.splitlines()[2].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
