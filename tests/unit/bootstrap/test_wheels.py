"""The Python a wheel set needs, from PEP 427 file names, and the host check made of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshop.bootstrap.wheels import PythonNeed, python_check, python_need

PURE = "click-8.5.1-py3-none-any.whl"
CP311 = "pyyaml-6.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
ABI3 = "cryptography-50.0.2-cp311-abi3-manylinux_2_34_x86_64.whl"
ABI3_OLD = "bcrypt-5.0.0-cp39-abi3-manylinux_2_34_x86_64.whl"


@pytest.mark.parametrize(
    ("names", "need", "text"),
    [
        ([PURE, "py_consul-1.8.0-py2.py3-none-any.whl"], PythonNeed(), "any Python 3"),
        ([PURE, CP311], PythonNeed((3, 11)), "3.11"),
        ([PURE, ABI3_OLD], PythonNeed(None, (3, 9)), "3.9 or later"),
        ([ABI3_OLD, ABI3], PythonNeed(None, (3, 11)), "3.11 or later"),
        ([CP311, ABI3_OLD], PythonNeed((3, 11), (3, 9)), "3.11"),
    ],
)
def test_python_need_from_wheel_names(names, need, text):
    assert python_need(names) == need and need.text() == text


def test_wheels_for_two_pythons_are_refused():
    with pytest.raises(ValueError, match=r"different Pythons \(3\.11, 3\.12\)"):
        python_need([CP311, "cffi-2.1.1-cp312-cp312-manylinux2014_x86_64.whl"])


def _run(command: str) -> subprocess.CompletedProcess[str]:
    bin_dir = sys.executable.rsplit("/", 1)[0]  # this Python as the host's python3
    return subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    )


def test_the_host_check_passes_on_the_right_python_and_says_which_one_otherwise():
    here = sys.version_info[:2]
    assert python_check(PythonNeed()) is None
    assert _run(python_check(PythonNeed(here)).check).returncode == 0
    assert _run(python_check(PythonNeed(None, here)).check).returncode == 0
    wrong = python_check(PythonNeed((3, here[1] + 1)))
    assert _run(wrong.check).returncode != 0
    failed = _run(wrong.apply)
    assert (
        failed.returncode == 1 and f"the wheels need Python 3.{here[1] + 1}, this host has Python 3." in failed.stderr
    )
