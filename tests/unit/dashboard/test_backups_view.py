"""The service page's backups: escaped, and a failed, stale or missing backup is marked."""

from __future__ import annotations

from meshop.client.volumes import BackupLine
from meshop.dashboard.views import backups_table
from meshop.model.records import VolumeBackup

NOW = 10_000.0


def test_backups_are_escaped_and_marked() -> None:
    lines = [
        BackupLine("db", "n1", VolumeBackup("data", every=60.0, last_success=NOW - 30, snapshot="abcd1234")),
        BackupLine("db", "n1", VolumeBackup("logs", every=60.0, last_success=NOW - 500)),
        BackupLine("db", "n1", VolumeBackup("tmp", every=60.0, error="<script>x</script>", reason="failed")),
    ]
    html = backups_table(lines, NOW)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("badge ok") == 1 and html.count("badge bad") == 2
    assert "abcd1234" in html and "none yet" in html
