"""The server's CPU time and memory, from its ``/metrics`` (any host) or from ``/proc`` (a local pid)."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable


class ServerSampler:
    """Reads cumulative CPU seconds and RSS through ``read() -> (cpu_s, rss_bytes)``."""

    def __init__(self, read: Callable[[], tuple[float, float]]) -> None:
        self._read = read
        self._last: tuple[float, float] | None = None

    def cpu_seconds(self) -> float:
        return self._read()[0]

    def rss_mb(self) -> float:
        return self._read()[1] / 1e6

    def cpu_pct_since_last(self) -> float:
        now = time.monotonic()
        cpu = self._read()[0]
        last = self._last
        self._last = (now, cpu)
        if last is None or now <= last[0]:
            return 0.0
        return 100 * (cpu - last[1]) / (now - last[0])


def parse_process_metrics(text: str) -> tuple[float, float]:
    """``process_cpu_seconds_total`` and ``process_resident_memory_bytes`` from Prometheus text."""
    cpu = rss = float("nan")
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            cpu = float(line.split()[1])
        elif line.startswith("process_resident_memory_bytes "):
            rss = float(line.split()[1])
    return cpu, rss


def metrics_sampler(base: str) -> ServerSampler:
    def read() -> tuple[float, float]:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as res:
            return parse_process_metrics(res.read().decode())

    return ServerSampler(read)


def proc_sampler(pid: int) -> ServerSampler:
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")

    def read() -> tuple[float, float]:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            rss_pages = int(f.read().split()[1])
        # fields[11], [12]: utime, stime (counting from the state field after the command name)
        return (int(fields[11]) + int(fields[12])) / ticks, rss_pages * page

    return ServerSampler(read)


def local_listener_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP ``port`` (from /proc), or None."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    return int(entry)
        except OSError:  # gone, or not ours to read
            continue
    return None
