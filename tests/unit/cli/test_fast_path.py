"""The fast path (``meshop.cli.fast``) against click, the reference: the same command line gives the same
exit code, stdout and stderr either way; whatever the fast path parses, click reads the same; anything
unusual goes to click. (The apply cases against a real Consul with ACLs: tests/integration/cli/
test_cli_fast_path.py; that a real ``meshop validate`` never imports click: tests/unit/test_imports.py.)
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.cli import entry, fast, main
from meshop.cli.commands import documents
from meshop.cli.context import CliContext
from meshop.client import version

VALID = "apiVersion: meshop.io/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  image: nginx:1\n"
OTHER = VALID.replace("name: web", "name: api")
INVALID = VALID.replace("image: nginx:1", "image: nginx:1\n  replicas: -1")  # spec.replicas below its minimum
ROUTED = VALID + "  ports: [{name: http, container: 80}]\n  route: {host: web.example.com, port: http}\n"
Outcome = tuple[int, str, str]


@pytest.fixture(autouse=True)
def _no_consul_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CONSUL_HTTP_ADDR",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE",
        "MESHOP_PREFIX",
        "_MESHOP_COMPLETE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """``{name}`` placeholders of the cases: documents, a directory of two, an empty one, a free port."""
    for name, text in (("valid.yaml", VALID), ("other.yaml", OTHER), ("invalid.yaml", INVALID)):
        (tmp_path / name).write_text(text)
    (tmp_path / "routed.yaml").write_text(ROUTED)
    (tmp_path / "broken.yaml").write_text("kind: Service\nmetadata: {name: [\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.yaml").write_text(VALID)
    (tmp_path / "dir" / "b.yml").write_text(OTHER)
    (tmp_path / "dir" / "notes.txt").write_text("not a document")
    (tmp_path / "empty").mkdir()
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        free = f"127.0.0.1:{sock.getsockname()[1]}"
    return {"dir": str(tmp_path), "free": free}


def outcome(
    runner: Callable[[list[str]], int | None],
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int | None, str, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = runner(argv)
    out, err = capsys.readouterr()
    return code, out, err


# (id, argv with {placeholders}, stdin, expected exit code, a piece of the expected output)
CASES = [
    ("valid", ["validate", "-f", "{dir}/valid.yaml"], "", 0, "service/web valid ({dir}/valid.yaml)"),
    ("invalid-names-the-field", ["validate", "-f", "{dir}/invalid.yaml"], "", 1, "spec.replicas"),
    ("broken-yaml", ["validate", "-f", "{dir}/broken.yaml"], "", 1, "{dir}/broken.yaml:3:1: expected the node content"),
    ("missing-file", ["validate", "-f", "{dir}/nope.yaml"], "", 1, "{dir}/nope.yaml: no such file"),
    ("directory", ["validate", "-f", "{dir}/dir"], "", 0, "service/api valid ({dir}/dir/b.yml)"),
    ("empty-directory", ["validate", "-f", "{dir}/empty"], "", 1, "no *.yaml, *.yml or *.json files"),
    ("stdin", ["validate", "-f", "-"], VALID, 0, "service/web valid (<stdin>)"),
    ("stdin-empty", ["validate", "-f", "-"], "", 0, ""),
    ("two-files", ["validate", "-f", "{dir}/valid.yaml", "--filename", "{dir}/other.yaml"], "", 0, "service/api"),
    ("filename-equals", ["validate", "--filename={dir}/valid.yaml"], "", 0, "service/web valid"),
    ("same-document-twice", ["validate", "-f", "{dir}/valid.yaml", "-f", "{dir}/dir/a.yaml"], "", 1, "again"),
    (
        "globals",
        ["--consul-addr", "{free}", "--token", "t", "--prefix", "p", "validate", "-f", "{dir}/valid.yaml"],
        "",
        0,
        "service/web valid",
    ),
    (
        "globals-equals",
        ["--consul-addr={free}", "--token=t=1", "--prefix=/p/", "validate", "-f", "{dir}/valid.yaml"],
        "",
        0,
        "service/web valid",
    ),
    # validate never talks to Consul: an address it would not understand is not its business
    ("validate-bad-address", ["--consul-addr", "host:port", "validate", "-f", "{dir}/valid.yaml"], "", 0, "valid"),
    (
        "validate-cluster-no-route",
        ["--consul-addr", "{free}", "validate", "--cluster", "-f", "{dir}/valid.yaml"],
        "",
        0,
        "valid",
    ),
    (
        "validate-cluster-route-unreachable",
        ["--consul-addr", "{free}", "validate", "-f", "{dir}/routed.yaml", "--cluster"],
        "",
        2,
        "is unreachable",
    ),
    (
        "apply-unreachable",
        ["--consul-addr", "{free}", "apply", "-f", "{dir}/valid.yaml"],
        "",
        2,
        "Consul at http://{free} is unreachable",
    ),
    (
        "apply-bad-address",
        ["--consul-addr", "host:port", "apply", "-f", "{dir}/valid.yaml"],
        "",
        1,
        "Consul address 'host:port'",
    ),
    ("apply-invalid-first", ["--consul-addr", "{free}", "apply", "-f", "{dir}/invalid.yaml"], "", 1, "spec.replicas"),
    ("apply-missing-file", ["apply", "--filename", "{dir}/nope.yaml"], "", 1, "no such file"),
    ("version", ["version"], "", 0, "meshop "),
]


@pytest.mark.parametrize(("argv", "stdin", "code", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_fast_path_answers_as_click_does(
    argv: list[str],
    stdin: str,
    code: int,
    expected: str,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = [arg.format(**files) for arg in argv]
    assert fast.parse(argv) is not None
    quick = outcome(fast.run, argv, capsys, monkeypatch, stdin)
    reference = outcome(main.run, argv, capsys, monkeypatch, stdin)
    assert quick == reference
    assert quick[0] == code
    assert expected.format(**files) in quick[1] + quick[2]
    assert "Traceback" not in quick[2]


def test_a_closed_stdout_ends_as_click_does(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``meshop validate -f dir | head -0``: exit code 1, nothing on stderr, either way."""

    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    argv = ["validate", "-f", f"{files['dir']}/dir"]
    results = []
    for runner in (fast.run, main.run):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stdout", Closed())
        monkeypatch.setattr(sys, "stderr", err)
        results.append((runner(argv), err.getvalue()))
    monkeypatch.undo()
    assert results[0] == results[1] == (1, "")


NOT_OURS = [
    ("help", ["--help"]),
    ("command-help", ["validate", "--help"]),
    ("short-help", ["validate", "-h", "-f", "x.yaml"]),
    ("output-format", ["apply", "-f", "x.yaml", "-o", "json"]),
    ("version-output", ["version", "-o", "json"]),
    ("unknown-flag", ["validate", "-f", "x.yaml", "--bogus"]),
    ("unknown-global", ["--bogus", "validate", "-f", "x.yaml"]),
    ("double-dash", ["validate", "--", "-f", "x.yaml"]),
    ("attached-short", ["validate", "-fx.yaml"]),
    ("short-equals", ["validate", "-f=x.yaml"]),
    ("no-file", ["validate"]),
    ("missing-value", ["validate", "-f"]),
    ("dash-value", ["validate", "-f", "--cluster"]),
    ("repeated-global", ["--prefix", "a", "--prefix", "b", "validate", "-f", "x.yaml"]),
    ("global-after-command", ["validate", "--prefix", "a", "-f", "x.yaml"]),
    ("cluster-on-apply", ["apply", "--cluster", "-f", "x.yaml"]),
    ("extra-argument", ["validate", "-f", "x.yaml", "extra"]),
    ("other-command", ["diff", "-f", "x.yaml"]),
    ("unknown-command", ["valdate", "-f", "x.yaml"]),
    ("nothing", []),
]


@pytest.mark.parametrize("argv", [c[1] for c in NOT_OURS], ids=[c[0] for c in NOT_OURS])
def test_anything_unusual_goes_to_click(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not parsed by the fast path, and the console script's entry point answers exactly as click does."""
    assert fast.parse(argv) is None
    assert outcome(fast.run, argv, capsys, monkeypatch)[0] is None
    monkeypatch.setattr(sys, "argv", ["meshop", *argv])

    def entry_point(_: list[str]) -> int:
        with pytest.raises(SystemExit) as exited:
            entry.main()
        return int(exited.value.code or 0)

    assert outcome(entry_point, argv, capsys, monkeypatch) == outcome(main.run, argv, capsys, monkeypatch)


def test_shell_completion_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_MESHOP_COMPLETE", "bash_complete")
    assert fast.run(["version"]) is None


# --- whatever the fast path parses, click parses alike -------------------------------------------------

TOKENS = [
    "version", "validate", "apply", "diff", "-f", "--filename", "--filename=b.yaml", "-fb.yaml", "-f=b.yaml",
    "--cluster", "--consul-addr", "--consul-addr=h:1", "--token", "--token=t=x", "--prefix", "--prefix=",
    "--", "-", "-h", "--help", "-o", "json", "a.yaml", "", "x", "--bogus", "--cluster=1",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=8))
def test_what_the_fast_path_parses_click_reads_the_same(argv: list[str]) -> None:
    """Click runs the same command with the same global flags, paths and ``--cluster`` (the commands'
    bodies replaced by recorders here: this is about reading the command line)."""
    call = fast.parse(argv)
    if call is None:
        return
    seen: list[tuple[str, dict[str, str], tuple[str, ...], bool]] = []

    def flags(obj: CliContext) -> dict[str, str]:
        given = {"addr": obj.addr, "token": obj.token, "prefix": obj.prefix_flag}
        return {name: value for name, value in given.items() if value is not None}

    def validate(obj: CliContext, paths: tuple[str, ...], cluster: bool, echo: object) -> None:
        seen.append(("validate", flags(obj), tuple(paths), cluster))

    def apply(obj: CliContext, paths: tuple[str, ...], echo: object) -> None:
        seen.append(("apply", flags(obj), tuple(paths), False))

    def build_info() -> dict[str, object]:
        seen.append(("version", {}, (), False))
        return {"version": "0", "commit": "c", "python": "3", "platform": "p", "libraries": {}}

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.setattr(documents, "validate_documents", validate)
        patch.setattr(documents, "apply_documents", apply)
        patch.setattr(version, "build_info", build_info)
        assert main.run(argv) == 0
    assert seen == [(call.command, call.flags if call.command != "version" else {}, call.paths, call.cluster)]
