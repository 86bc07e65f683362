"""Soak: many viewers join and leave a live stream; does the server give everything back?

Run: ``python -m benchmarks.soak [--cycles 1000] [--batch 10]``

Starts ``livecart serve`` on 127.0.0.1, a publisher and three steady viewers that decode
throughout, then ``--cycles`` viewers join (full WHEP + ICE + DTLS, first frame decoded) and
leave, half with DELETE and half by vanishing (closing without DELETE), ``--batch`` at a time.
Reports the server's RSS, open file descriptors, UDP sockets, threads and asyncio tasks before
and after, and the longest gap in the steady viewers' decoded frames.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher

KEY = "soak-publish-key-0123456789"


def start_server(tmp: Path, setup_timeout: float) -> tuple[subprocess.Popen[str], str]:
    config = tmp / "livecart.toml"
    config.write_text(
        "[limits]\nposts_per_s_per_ip = 10000\nposts_burst = 10000\nmax_viewers_per_stream = 500\n"
        f'[streams.soak]\npublish_key = "{KEY}"\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--config",
            str(config),
            "--data-dir",
            str(tmp / "data"),
            "--setup-timeout",
            str(setup_timeout),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp / "server.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError(f"server did not start: {(tmp / 'server.log').read_text()}")


async def counts(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/streams") as res:
        data = await res.json()
    ingest = next((s.get("ingest") for s in data["streams"] if s.get("ingest")), None) or {}
    return {**data["sessions"], **data["process"], "ingest": ingest}


async def drained(http: aiohttp.ClientSession, base: str, viewers: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        now = await counts(http, base)
        if (now["viewers"] == viewers and now["negotiating"] == 0) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


async def one_cycle(http: aiohttp.ClientSession, base: str, polite: bool) -> bool:
    viewer = WhepViewer(base, "soak", read_pattern=False, audio=False)
    try:
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 1, 15)
        ok = True
    except (RuntimeError, TimeoutError, aiohttp.ClientError):
        ok = False
    await viewer.stop(http if polite else None, delete=polite)
    return ok


async def soak(cycles: int, batch: int) -> dict[str, Any]:
    """Run the soak; the measurements as data (``report`` turns them into a table)."""
    with tempfile.TemporaryDirectory() as tmp_dir:
        proc, base = start_server(Path(tmp_dir), setup_timeout=5)
        try:
            async with aiohttp.ClientSession() as http:
                publisher = WhipPublisher(base, "soak", KEY, width=640, height=360, h264=True, audio=False)
                await publisher.start(http)
                steady = [WhepViewer(base, "soak", read_pattern=False) for _ in range(3)]
                for viewer in steady:
                    await viewer.start(http)
                    await viewer.wait_for(lambda r: len(r.frames) >= 10, 15)
                # Warm up the paths that allocate once (encoders, caches), then take the baseline.
                await asyncio.gather(*(one_cycle(http, base, i % 2 == 0) for i in range(batch)))
                before = await drained(http, base, 3, 30)
                started = time.monotonic()
                ok = 0
                trace: list[tuple[int, int]] = [(0, before["rss_bytes"])]
                for first in range(0, cycles, batch):
                    results = await asyncio.gather(
                        *(one_cycle(http, base, i % 2 == 0) for i in range(first, min(cycles, first + batch)))
                    )
                    ok += sum(results)
                    done = min(cycles, first + batch)
                    if done % max(batch, cycles // 4 // batch * batch) == 0:
                        trace.append((done, (await counts(http, base))["rss_bytes"]))
                took = time.monotonic() - started
                after = await drained(http, base, 3, 60)
                gaps = [max(b.at - a.at for a, b in pairwise(v.record.frames)) for v in steady]
                for viewer in steady:
                    await viewer.stop(http)
                await publisher.stop(http)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    return {
        "cycles": cycles,
        "ok": ok,
        "batch": batch,
        "seconds": took,
        "before": before,
        "after": after,
        "max_gap_s": max(gaps),
        "rss_trace": trace,
        "exit_code": proc.returncode,
    }


def report(result: dict[str, Any]) -> str:
    cycles, ok, batch, took = result["cycles"], result["ok"], result["batch"], result["seconds"]
    before, after = result["before"], result["after"]
    rows = [
        f"cycles: {cycles} ({ok} reached their first frame), {batch} at a time, {took:.0f} s; "
        f"half left with DELETE, half vanished",
        "",
        "| server | before | after | change |",
        "|---|---|---|---|",
    ]
    for key in ("rss_bytes", "open_fds", "udp_sockets", "threads", "asyncio_tasks", "viewers", "peer_connections"):
        b, a = before[key], after[key]
        if key == "rss_bytes":
            rows.append(f"| RSS (MB) | {b / 2**20:.1f} | {a / 2**20:.1f} | {(a - b) / 2**20:+.1f} |")
        else:
            rows.append(f"| {key} | {b} | {a} | {a - b:+d} |")
    trace = ", ".join(f"{n}: {rss / 2**20:.1f}" for n, rss in result["rss_trace"])
    rows.append("")
    rows.append(f"RSS (MB) after so many cycles: {trace}")
    rows.append(f"longest gap between decoded frames of the 3 steady viewers: {result['max_gap_s'] * 1000:.0f} ms")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    print(report(asyncio.run(soak(args.cycles, args.batch))))


if __name__ == "__main__":
    main()
