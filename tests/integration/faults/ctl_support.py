"""Controller processes for the fault tests: started, killed, restarted with the same --id, all by PID."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import acl
from tests.support.procs import Process, free_port, wait_until


@dataclass
class ControllerProc:
    """One ``meshop controller run --id ID``; ``restart()`` runs the same command line again."""

    ident: str
    args: list[str]
    log_dir: Path
    port: int
    token: str = ""  # the controller role's token (ACL-enabled Consul)
    runs: list[Process] = field(default_factory=list)

    @property
    def process(self) -> Process:
        return self.runs[-1]

    def start(self) -> ControllerProc:
        log_path = self.log_dir / f"controller-{self.ident}-{len(self.runs)}.log"
        self.runs.append(Process(self.args, log_path, env={"CONSUL_HTTP_TOKEN": self.token}).start())
        return self

    def readyz(self, timeout: float = 2.0) -> str | None:
        """The /readyz body, or None when the process does not answer in time."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=timeout) as response:
                return str(response.read().decode().strip())
        except urllib.error.HTTPError as exc:
            return str(exc.read().decode().strip())
        except OSError:
            return None

    def log(self) -> str:
        return "\n".join(f"--- run {i}\n{run.log_tail(60)}" for i, run in enumerate(self.runs))

    def stop(self) -> None:
        for run in self.runs:
            run.stop()


def controller_proc(
    consul_addr: str, prefix: str, short: str, log_dir: Path, *flags: str, token: str | None = None
) -> ControllerProc:
    """A started controller with the controller's token for ``prefix`` (pass ``token`` when
    ``consul_addr`` is a proxy in front of the session's Consul)."""
    port = free_port()
    ident = f"{prefix}-{short}"
    meshop = str(Path(sys.executable).parent / "meshop")
    args = [meshop, "--consul-addr", consul_addr, "--prefix", prefix, "controller", "run", "--id", ident]
    args += ["--metrics-addr", f"127.0.0.1:{port}", *flags]
    if token is None:
        token = acl.token_for(consul_addr, prefix, ["controller", "run"]) or ""
    return ControllerProc(ident, args, log_dir, port, token).start()


def wait_serving(proc: ControllerProc, timeout: float = 30.0) -> None:
    wait_until(lambda: proc.readyz() is not None, timeout, what=f"{proc.ident} to serve /readyz\n{proc.log()}")


@dataclass(frozen=True)
class Answer:
    who: str
    sent: float
    received: float
    body: str


class ReadyzRecorder:
    """Polls /readyz of several controllers (one thread per entry, back to back) and, beside them, who
    holds the ``leader`` key in Consul (``holder()``), keeping every answer and every sample."""

    def __init__(self, procs: list[ControllerProc], holder: Callable[[], str | None], timeout: float = 0.5) -> None:
        self.procs = procs
        self.holder = holder
        self.timeout = timeout
        self.answers: list[Answer] = []
        self.samples: list[tuple[float, str | None]] = []
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, args=(p,), daemon=True) for p in procs]
        self._threads.append(threading.Thread(target=self._sample, daemon=True))

    def __enter__(self) -> ReadyzRecorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _poll(self, proc: ControllerProc) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            body = proc.readyz(self.timeout)
            if body is not None:
                with self._mu:
                    self.answers.append(Answer(proc.ident, sent, time.monotonic(), body))
            self._stop.wait(0.01)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                who = self.holder()
            except Exception:  # noqa: BLE001 - a failed read is just a missing sample
                continue
            with self._mu:
                self.samples.append((time.monotonic(), who))
            self._stop.wait(0.01)

    def false_leaders(self) -> list[tuple[Answer, list[str | None]]]:
        """ "leader" answers given while, for the whole time from request to answer, Consul's ``leader``
        key was held by ANOTHER controller (the last sample before the request and every sample up to
        the answer name someone else): a second leader at the same moment."""
        with self._mu:
            samples = sorted(self.samples)
            answers = [a for a in self.answers if a.body == "leader"]
        wrong = []
        for answer in answers:
            before = [who for at, who in samples if at <= answer.sent][-1:]
            during = [who for at, who in samples if answer.sent < at <= answer.received]
            seen = before + during
            if before and all(who is not None and who != answer.who for who in seen):
                wrong.append((answer, seen))
        return wrong


class HangingProxy:
    """A TCP forwarder to Consul that can hang every connection (a network partition without resets).

    ``freeze()`` stops passing bytes both ways (new connections are accepted and hang too); ``thaw()``
    passes everything held back. Runs in daemon threads; ``close()`` stops it.
    """

    def __init__(self, target: str) -> None:
        import socket

        host, _, port = target.removeprefix("http://").rpartition(":")
        self.target = (host, int(port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.frozen = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def close(self) -> None:
        self.closed.set()
        self.thaw()
        self.listener.close()

    def _accept(self) -> None:
        import socket

        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: object, dst: object) -> None:
        import socket

        assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self.closed.is_set():
                    time.sleep(0.01)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
