"""init/node add print one line per step they apply (wheels as one line) and a summary; nothing for a
step already done, so a re-run prints one line."""

from __future__ import annotations

import pytest

from meshop.bootstrap.render import WHEELS
from meshop.bootstrap.steps import Command, File
from meshop.cli.commands.bootstrap import _run
from meshop.ssh.session import Result


class _Host:
    target = "root@host"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> Result:
        done = command in self.files or command == "true" or command.startswith("mkdir")
        return Result(0 if done else 1, b"", b"")

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.files[f"check {path}"] = data


class _File(File):
    @property
    def check(self) -> str:
        return f"check {self.path}"


STEPS = [
    *(_File(f"{WHEELS}/w{i}-1-py3-none-any.whl", b"w") for i in range(20)),
    _File("/etc/consul.d/consul.json", b"{}"),
    Command("already there", check="true", apply="false"),
]


def test_a_fresh_run_says_what_it_applies_and_the_wheels_in_one_line(capsys: pytest.CaptureFixture[str]):
    host = _Host()
    _run(STEPS, host)
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "[21/22] file /etc/consul.d/consul.json (mode 0644)",
        f"meshop's wheels: 20 of 20 uploaded to {WHEELS}",
    ]
    assert out == "root@host: 21 step(s) changed, 1 already done\n"
    _run(STEPS, host)  # again: one line
    out, err = capsys.readouterr()
    assert err == "" and out == "root@host: 0 step(s) changed, 22 already done\n"
