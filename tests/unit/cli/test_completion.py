"""Shell completion through the console script's entry (fast path first, then click): every command, every
flag, choices, and nothing (quickly, no traceback) for resource names when Consul does not answer. (Names
from a real Consul, and the scripts loaded in bash, zsh and fish: tests/integration/cli/test_cli_completion.py.)"""

from __future__ import annotations

import socket
import time

import click
import pytest

from meshop.cli import complete, entry, main


def completions(words: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What bash would be offered for the command line ``words`` (the last word being completed)."""
    monkeypatch.setenv("_MESHOP_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
    capsys.readouterr()
    assert entry.run([]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return [line.split(",", 1)[1] for line in out.splitlines() if line]


@pytest.fixture(autouse=True)
def _nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port where nothing listens: Consul is "down"
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{port}")
    for name in ("CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "MESHOP_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def test_every_command_completes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(completions("meshop ", monkeypatch, capsys)) >= {*main.COMMANDS, "version"}
    assert completions("meshop ed", monkeypatch, capsys) == ["edit"]


@pytest.mark.parametrize("command", sorted({*main.COMMANDS, "version"}))
def test_every_flag_of_every_command_completes(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = click.Context(main.cli)
    cmd = main.cli.get_command(ctx, command)
    assert cmd is not None
    commands = [cmd] if not isinstance(cmd, click.Group) else [cmd.get_command(ctx, n) for n in cmd.list_commands(ctx)]
    for each in commands:
        assert each is not None
        words = f"meshop {command} " + ("" if each is cmd else f"{each.name} ")
        wanted = {
            o for p in each.params if isinstance(p, click.Option) and not p.hidden for o in p.opts if o[:2] == "--"
        }
        assert wanted <= set(completions(words + "--", monkeypatch, capsys)), words


def test_choices_complete(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert completions("meshop get services -o ", monkeypatch, capsys) == ["table", "json", "yaml"]
    assert completions("meshop edit s", monkeypatch, capsys) == ["service", "services", "svc"]
    assert completions("meshop events s", monkeypatch, capsys) == ["service/"]


@pytest.mark.parametrize(
    "words",
    [
        "meshop get svc ",
        "meshop get node ",
        "meshop describe service ",
        "meshop edit node ",
        "meshop delete service ",
        "meshop logs ",
        "meshop logs web --node ",
        "meshop exec ",
        "meshop restart service ",
        "meshop nodes drain ",
        "meshop events service/",
        "meshop acl token agent --node ",
    ],
)
def test_names_complete_nothing_quickly_when_consul_is_down(
    words: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert completions(words, monkeypatch, capsys) == []
    assert time.monotonic() - started < complete.TIMEOUT + 1


def test_a_broken_flag_completes_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")  # ConsulConfig refuses it
    assert completions("meshop get svc ", monkeypatch, capsys) == []
    assert completions("meshop --consul-addr ::bad get svc ", monkeypatch, capsys) == []


def test_files_complete_as_the_shell_does(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("_MESHOP_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "meshop apply -f we")
    monkeypatch.setenv("COMP_CWORD", "3")
    capsys.readouterr()
    assert entry.run([]) == 0
    assert capsys.readouterr().out == "file,we\n"
