"""The host's own counters: /proc/stat, /proc/meminfo, /proc/loadavg and the disk of one folder.

Reads files only (parsing is planning's, pure: ``planning/usage.py``); a missing or unreadable file
(not Linux, a restricted /proc) gives None, and the node's record then carries its replicas only.
"""

from __future__ import annotations

import os
from pathlib import Path

from meshop.agent.planning.usage import HostSample, parse_loadavg, parse_meminfo, parse_proc_stat

MAX_READ = 1 << 20  # /proc/stat of a 4096-CPU host is ~500 KB


class HostReader:
    def __init__(self, proc: Path = Path("/proc"), disk: str = "/") -> None:
        self.proc = proc
        self.disk = disk

    def _read(self, name: str) -> str:
        with open(self.proc / name, encoding="ascii", errors="replace") as file:
            return file.read(MAX_READ)

    def sample(self) -> HostSample | None:
        try:
            stat = parse_proc_stat(self._read("stat"))
            memory = parse_meminfo(self._read("meminfo"))
            load = parse_loadavg(self._read("loadavg"))
        except OSError:
            return None
        if stat is None or memory is None:
            return None
        try:
            fs = os.statvfs(self.disk)
            disk_total = fs.f_blocks * fs.f_frsize
            disk = disk_total - fs.f_bfree * fs.f_frsize
        except OSError:
            disk = disk_total = 0
        busy, every, cpus = stat
        return HostSample(
            cpu_busy=busy,
            cpu_all=every,
            cpus=cpus,
            memory=memory[0],
            memory_total=memory[1],
            load=load,
            disk=disk,
            disk_total=disk_total,
        )
