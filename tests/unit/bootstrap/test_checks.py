"""The shell checks of bootstrap plans, run in a real shell against a stand-in ``systemctl``/``ss``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from meshop.bootstrap import checks

# systemctl as a table: E_<unit>, A_<unit>, R_<unit> (unit with '.'/'-' as '_') hold is-enabled's
# answer, is-active's state and NeedDaemonReload; many-unit calls answer as systemd does (any-of for
# is-active, values separated by blank lines for show --value).
SYSTEMCTL = r"""#!/bin/bash
verb=$1; shift
units=(); for a in "$@"; do case "$a" in -*|NeedDaemonReload) ;; *) units+=("$a");; esac; done
key() { local u=${1//./_}; echo "${u//-/_}"; }
case "$verb" in
  is-enabled) rc=1
    for u in "${units[@]}"; do v=E_$(key "$u"); echo "${!v:-disabled}"; [ "${!v}" = enabled ] && rc=0; done; exit $rc;;
  is-active) rc=3; for u in "${units[@]}"; do v=A_$(key "$u"); [ "${!v}" = active ] && rc=0; done; exit $rc;;
  show) first=1; for u in "${units[@]}"; do [ $first = 1 ] || echo; first=0; v=R_$(key "$u"); echo "${!v:-no}"; done;;
esac
"""


def _run(tmp_path: Path, script: str, env: dict[str, str], **fakes: str) -> int:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in {"systemctl": SYSTEMCTL, **fakes}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        ["sh", "-c", script], env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, capture_output=True
    ).returncode


UNITS = ["a.service", "b-c.service"]
ALL_GOOD = {"E_a_service": "enabled", "A_a_service": "active", "E_b_c_service": "enabled", "A_b_c_service": "active"}


@pytest.mark.parametrize(
    ("change", "passes"),
    [
        ({}, True),  # many units: `show --value` puts blank lines between them, still "no reload needed"
        ({"A_b_c_service": "failed"}, False),  # one inactive unit is enough to fail (is-active A B is any-of)
        ({"E_a_service": "disabled"}, False),
        ({"E_a_service": "masked"}, False),
        ({"R_b_c_service": "yes"}, False),  # the file on disk is not the loaded one
    ],
)
def test_units_running_checks_every_unit_on_its_own(tmp_path: Path, change, passes):
    assert (_run(tmp_path, checks.units_running(UNITS), {**ALL_GOOD, **change}) == 0) is passes


def test_units_running_one_unit(tmp_path: Path):
    assert _run(tmp_path, checks.units_running(["a.service"]), ALL_GOOD) == 0
