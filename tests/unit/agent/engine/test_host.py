"""The host reader: /proc files in, a HostSample out; a missing or garbled file gives None, not zeros."""

from __future__ import annotations

from pathlib import Path

from meshop.agent.engine.host import HostReader

STAT = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 100 0 100 700 100 0 0 0 0 0\n"
MEMINFO = "MemTotal: 2048 kB\nMemFree: 100 kB\nMemAvailable: 1024 kB\n"


def _proc(tmp_path: Path, stat: str = STAT, meminfo: str = MEMINFO) -> Path:
    (tmp_path / "stat").write_text(stat)
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "loadavg").write_text("0.25 0.50 0.75 1/99 7\n")
    return tmp_path


def test_reads_the_host(tmp_path: Path) -> None:
    sample = HostReader(_proc(tmp_path), disk=str(tmp_path)).sample()
    assert sample is not None
    assert (sample.cpu_busy, sample.cpu_all, sample.cpus) == (200, 1000, 1)
    assert (sample.memory, sample.memory_total, sample.load) == (1024 * 1024, 2048 * 1024, (0.25, 0.5, 0.75))
    assert 0 < sample.disk <= sample.disk_total


def test_missing_or_garbled_files_give_no_sample(tmp_path: Path) -> None:
    assert HostReader(tmp_path / "nothing").sample() is None
    for name, files in {"stat": {"stat": "cpu x\n"}, "meminfo": {"meminfo": "MemTotal: lots\n"}}.items():
        folder = tmp_path / f"bad-{name}"
        folder.mkdir()
        assert HostReader(_proc(folder, **files)).sample() is None, name
    sample = HostReader(_proc(tmp_path), disk="/no/such").sample()
    assert sample is not None and (sample.disk, sample.disk_total) == (0, 0)  # no disk figure, the rest kept
