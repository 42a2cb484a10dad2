"""What init/node add upload: the wheels folder found wherever the command is typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.client.bootstrap import checkout_wheels, load_software
from meshop.errors import DocumentError

REPO = Path(__file__).resolve().parents[3]


def test_default_wheels_are_the_checkouts_not_the_current_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert checkout_wheels() == REPO / ".dev" / "wheels"
    missing = tmp_path / "nowhere"
    with pytest.raises(DocumentError, match=f"--wheels {missing}: not a folder"):
        load_software(missing, None)
