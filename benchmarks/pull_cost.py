"""What one edge's pull costs its origin, against the viewers it stands for.

Run: ``python -m benchmarks.pull_cost [--edges 2] [--seconds 20]``

Starts Debian's ``redis-server``, an origin publishing the demo source (1280x720, the default
ladder: 720p, 480p and 240p) pinned to core 0 where ``taskset`` exists, and ``--edges`` edges
pinned to the other cores with the load client. For each step it measures, over ``--seconds``,
the origin process's CPU time (``/proc/PID/stat``) and the RTP packets its fan-out sent:

- ``idle``: no viewer anywhere (the origin's own cost: decode-free demo source, the ladder);
- ``pulls k``: one viewer on each of k edges, so k pulls (each: every rung and the audio);
- ``direct``: three viewers on the origin itself, one per rung (what one pull carries).

The marginal CPU per pull, and per forwarded packet, are the differences from ``idle``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.peers import WhepViewer

TOKEN = "bench-cluster-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(tmp: Path, name: str, args: list[str], core: str | None) -> tuple[subprocess.Popen[str], str]:
    pin = ["taskset", "-c", core] if core is not None and shutil.which("taskset") else []
    command = [*pin, sys.executable, "-m", "relay.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        [*command, *args, "--data-dir", str(tmp / f"{name}-data"), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=(tmp / f"{name}.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError(f"{name} did not start: {(tmp / f'{name}.log').read_text()[-2000:]}")


async def _packets(http: aiohttp.ClientSession, origin: str) -> int:
    async with http.get(f"{origin}/api/streams/demo") as res:
        data: dict[str, Any] = await res.json()
    return int(data["packets_forwarded"])


async def _measure(http: aiohttp.ClientSession, origin: str, pid: int, seconds: float) -> tuple[float, float]:
    """(cores used, packets per second) by the origin over ``seconds``."""
    cpu0, pkts0, t0 = _cpu_s(pid), await _packets(http, origin), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, pkts1, t1 = _cpu_s(pid), await _packets(http, origin), time.monotonic()
    return (cpu1 - cpu0) / (t1 - t0), (pkts1 - pkts0) / (t1 - t0)


async def _registered(http: aiohttp.ClientSession, origin: str, timeout_s: float = 30) -> None:
    """Until the origin's heartbeat has named it the demo stream's origin (edges can pull then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(f"{origin}/api/cluster") as res:
            nodes = (await res.json())["nodes"]
        if any(n["role"] == "origin" and "demo" in n["streams"] for n in nodes):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the origin never registered the demo stream")


async def _watch(http: aiohttp.ClientSession, base: str, rendition: str) -> WhepViewer:
    viewer = WhepViewer(base, "demo", rendition=rendition, read_pattern=False)
    viewer.url += "&via=bench"  # served where it is posted (no redirect)
    await viewer.start(http)
    await viewer.wait_for(lambda r: len(r.frames) >= 10, 30)
    return viewer


async def steps(origin: str, origin_pid: int, edges: list[str], seconds: float) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    async with aiohttp.ClientSession() as http:
        await _registered(http, origin)
        rows.append(("idle", *await _measure(http, origin, origin_pid, seconds)))
        watching = []
        for k, base in enumerate(edges, start=1):
            watching.append(await _watch(http, base, "240p"))
            rows.append((f"pulls {k}", *await _measure(http, origin, origin_pid, seconds)))
        for viewer in watching:
            await viewer.stop(http)
        direct = [await _watch(http, origin, r) for r in ("720p", "480p", "240p")]
        rows.append(("direct 3 (one per rung)", *await _measure(http, origin, origin_pid, seconds)))
        for viewer in direct:
            await viewer.stop(http)
    return rows


@contextlib.contextmanager
def redis_cluster(redis_core: str | None = None) -> Iterator[tuple[list[str], list[subprocess.Popen[str]]]]:
    """Debian's ``redis-server`` on a free loopback port (pinned to ``redis_core`` where
    ``taskset`` exists): yields the ``livecart serve`` flags that join it, and a list for the
    node processes started meanwhile; every one of them and Redis are stopped at the end."""
    port = _free_port()
    pin = ["taskset", "-c", redis_core] if redis_core is not None and shutil.which("taskset") else []
    redis = subprocess.Popen(
        [*pin, "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""], stdout=subprocess.DEVNULL
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        yield ["--cluster", f"redis://127.0.0.1:{port}/0", "--cluster-token", TOKEN], procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        redis.terminate()
        redis.wait(10)


def run(edges: int, seconds: float) -> list[tuple[str, float, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="pull-cost-"))
    cores = os.cpu_count() or 1
    with redis_cluster() as (cluster, procs):
        origin_proc, origin = _start(tmp, "origin", ["--demo", "--role", "origin", *cluster], "0")
        procs.append(origin_proc)
        bases = []
        for i in range(edges):
            core = f"1-{cores - 1}" if cores > 1 else None
            proc, base = _start(tmp, f"edge{i}", ["--role", "edge", *cluster], core)
            procs.append(proc)
            bases.append(base)
        return asyncio.run(steps(origin, origin_proc.pid, bases, seconds))


def report(rows: list[tuple[str, float, float]]) -> str:
    idle_cpu, idle_pps = rows[0][1], rows[0][2]
    lines = [
        "| step | origin CPU (cores) | packets/s sent | marginal CPU | marginal us/packet |",
        "|---|---|---|---|---|",
    ]
    for name, cpu, pps in rows:
        extra_cpu, extra_pps = cpu - idle_cpu, pps - idle_pps
        per_packet = f"{1e6 * extra_cpu / extra_pps:.1f}" if extra_pps > 0 else "-"
        lines.append(f"| {name} | {cpu:.3f} | {pps:.0f} | {extra_cpu:+.3f} | {per_packet} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(report(run(args.edges, args.seconds)))


if __name__ == "__main__":
    main()
