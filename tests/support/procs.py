"""Start background processes, remember their PIDs, stop them by those PIDs (never by name)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _patience() -> float:
    """How much longer than written every "eventually" wait may take. ``make test`` runs tests in parallel
    workers (pytest-xdist) on 2 cores, where a container start or a Consul write waits its turn behind the
    other workers' processes: each worker waits twice as long as the test says. Only waits for a
    condition scale; no test's timing property does (figures come from benchmarks/).
    ``MESHOP_TEST_PATIENCE`` sets the factor."""
    default = "2" if os.environ.get("PYTEST_XDIST_WORKER") else "1"
    return max(1.0, float(os.environ.get("MESHOP_TEST_PATIENCE") or default))


PATIENCE = _patience()


def free_port() -> int:
    """A port free on 127.0.0.1 right now for TCP and UDP, chosen BELOW the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which every outgoing
    connection also draws its local port from: a server restarted on "its" port (a Consul restarted in a
    test) found it taken by some client's connection in the meantime. Ports below that range are only
    ever taken by someone who asked for them."""
    low, high = 10000, _ephemeral_low() - 1
    for _ in range(200) if high - low > 1000 else ():
        port = random.randint(low, high)
        if _bindable(port, socket.SOCK_STREAM) and _bindable(port, socket.SOCK_DGRAM):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.02, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds
    (times ``PATIENCE``)."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - the condition may fail while a peer starts
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}{detail}")
        time.sleep(interval)


def find_binary(name: str, env_var: str | None = None) -> str:
    """The binary from ``env_var``, from PATH, or from the project's .dev/bin (where setup puts Consul)."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    for candidate in (shutil.which(name), REPO / ".dev" / "bin" / name, Path("/usr/sbin") / name):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} not found: run `make setup` (it installs every component the tests use)")


class Process:
    """One background process with its own log file; ``stop()`` signals exactly its PID."""

    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        try:
            self.popen = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
                preexec_fn=_default_interrupt,
            )
        finally:
            log.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; only this PID."""
        if not self.alive():
            return
        assert self.popen is not None
        os.kill(self.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _default_interrupt() -> None:
    """In the child: SIGINT does what it does for a user at a terminal. A test run started in the
    background by a non-interactive shell (``make test &``) inherits SIGINT *ignored*, and Python then
    installs no KeyboardInterrupt handler, so a test that presses Ctrl-C would see nothing happen."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_pidfile(pidfile: Path, sig: int = signal.SIGKILL) -> bool:
    """Signal the process whose PID a daemon we started wrote to ``pidfile`` (e.g. a gateway's own Caddy
    left running when the test killed the gateway); False when the file or the process is gone."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, sig)
    except (OSError, ValueError):
        return False
    with contextlib.suppress(OSError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            status = Path(f"/proc/{pid}/status").read_text()
            if "\nState:\tZ" in status:
                break
            time.sleep(0.02)
    return True
