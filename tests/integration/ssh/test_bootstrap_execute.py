"""The bootstrap executor over a real sshd: check, skip when done, apply otherwise; a second run changes
nothing; a changed file re-applies the steps that depend on it; a failing step stops with its name."""

from __future__ import annotations

import stat

import pytest

from meshop.bootstrap.execute import StepFailed, execute
from meshop.bootstrap.steps import Command, File
from meshop.ssh.hostkeys import Trust
from meshop.ssh.session import connect
from meshop.ssh.target import parse_target


@pytest.fixture
def host(sshd, known):
    with connect(parse_target(sshd.target), Trust(pinned=sshd.fingerprint), known, identity=str(sshd.client_key)) as s:
        yield s


def _plan(tmp_path, content: bytes):
    conf = str(tmp_path / "etc" / "app.env")
    return [
        File(conf, content, 0o600, ("s3cret",)),
        Command("marker", check=f"[ -f {tmp_path}/marker ]", apply=f"touch {tmp_path}/marker"),
        Command(
            "restart", check=f"[ -f {tmp_path}/restarts ]", apply=f"echo x >> {tmp_path}/restarts", after_change=(conf,)
        ),
    ]


def test_second_run_changes_nothing_and_a_changed_file_reapplies(host, tmp_path):
    progress: list[tuple[int, str]] = []
    first = execute(_plan(tmp_path, b"TOKEN=s3cret\n"), host, lambda i, n, s, what: progress.append((i, what)))
    assert [o.changed for o in first] == [True, True, True]
    assert (tmp_path / "etc" / "app.env").read_bytes() == b"TOKEN=s3cret\n"
    assert stat.S_IMODE((tmp_path / "etc" / "app.env").stat().st_mode) == 0o600
    assert progress[:3] == [(1, "checking"), (1, "applying"), (1, "changed")]

    second = execute(_plan(tmp_path, b"TOKEN=s3cret\n"), host)
    assert [o.changed for o in second] == [False, False, False]
    assert (tmp_path / "restarts").read_text() == "x\n"

    third = execute(_plan(tmp_path, b"TOKEN=other\n"), host)
    assert [o.changed for o in third] == [True, False, True]  # the restart follows the file
    assert (tmp_path / "restarts").read_text() == "x\nx\n"

    (tmp_path / "etc" / "app.env").chmod(0o644)  # drift in mode alone is repaired too
    assert [o.changed for o in execute(_plan(tmp_path, b"TOKEN=other\n"), host)] == [True, False, True]


def test_a_failing_step_stops_the_run_and_names_itself(host, tmp_path):
    steps = [
        Command("first", check=f"[ -f {tmp_path}/one ]", apply=f"touch {tmp_path}/one"),
        Command("broken", check="false", apply="echo no such thing >&2; exit 4"),
        Command("never", check="false", apply=f"touch {tmp_path}/never"),
    ]
    with pytest.raises(StepFailed, match="step 'broken': apply exited 4: no such thing"):
        execute(steps, host)
    assert (tmp_path / "one").exists() and not (tmp_path / "never").exists()
    lying = [Command("lying", check="false", apply="true")]
    with pytest.raises(StepFailed, match="the check after applying"):
        execute(lying, host)
