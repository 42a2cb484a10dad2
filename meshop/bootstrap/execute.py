"""The one executor of bootstrap plans: for each step, check on the host; skip it when done, else apply it
and check again. Progress is reported per step; the first step that cannot be applied stops the run with
its name and the command's error, and everything before it stays done (re-run to continue)."""

from __future__ import annotations

import posixpath
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from meshop.bootstrap.steps import Command, File, Packages, Step
from meshop.errors import DriverError
from meshop.ssh.session import Result


class Host(Protocol):
    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> Result: ...

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None: ...


class StepFailed(DriverError):
    """A step could not be applied (or did not check out after applying)."""


@dataclass(frozen=True)
class StepOutcome:
    title: str
    changed: bool
    seconds: float


Progress = Callable[[int, int, Step, str], None]  # (index from 1, total, step, "checking"|"ok"|"applying"|"changed")


def _fail(step: Step, what: str, result: Result) -> StepFailed:
    tail = (result.stderr or result.stdout).decode("utf-8", "replace").strip()[-600:]
    return StepFailed(f"step {step.title!r}: {what} exited {result.exit_code}" + (f": {tail}" if tail else ""))


def execute(
    steps: Sequence[Step], host: Host, progress: Progress = lambda *_: None, timeout: float = 900
) -> list[StepOutcome]:
    outcomes: list[StepOutcome] = []
    written: set[str] = set()
    for index, step in enumerate(steps, 1):
        started = time.monotonic()
        progress(index, len(steps), step, "checking")
        forced = isinstance(step, Command) and bool(written.intersection(step.after_change))
        if not forced and host.run(step.check, timeout=timeout).ok:
            outcomes.append(StepOutcome(step.title, False, time.monotonic() - started))
            progress(index, len(steps), step, "ok")
            continue
        progress(index, len(steps), step, "applying")
        if isinstance(step, File):
            mkdir = host.run(f"mkdir -p {shlex.quote(posixpath.dirname(step.path))}", timeout=timeout)
            if not mkdir.ok:
                raise _fail(step, "mkdir", mkdir)
            host.put_file(step.path, step.content, step.mode)
            written.add(step.path)
        else:
            assert isinstance(step, Command | Packages)
            applied = host.run(step.apply, timeout=timeout)
            if not applied.ok:
                raise _fail(step, "apply", applied)
            if not isinstance(step, Command) or step.changes:
                written.add(step.title)  # a Command that wrote something (an env file) can force a restart too
        checked = host.run(step.check, timeout=timeout)
        if not checked.ok:
            raise _fail(step, "the check after applying", checked)
        changed = not isinstance(step, Command) or step.changes  # a readiness wait is not a change
        outcomes.append(StepOutcome(step.title, changed, time.monotonic() - started))
        progress(index, len(steps), step, "changed" if changed else "ok")
    return outcomes
