"""What this process holds right now: UDP sockets, threads, tasks (for the API and tests)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path


def _udp_inodes() -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9:
                inodes.add(fields[9])
    return inodes


def open_udp_sockets() -> int:
    """Count this process's open UDP sockets (Linux /proc; 0 elsewhere)."""
    inodes = _udp_inodes()
    count = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def process_counts() -> dict[str, int]:
    return {
        "rss_bytes": rss_bytes(),
        "open_fds": open_fds(),
        "udp_sockets": open_udp_sockets(),
        "threads": threading.active_count(),
        "asyncio_tasks": len(asyncio.all_tasks()),
    }
