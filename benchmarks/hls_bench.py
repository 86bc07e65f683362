"""What LL-HLS costs the server, and how many blocking playlist clients it serves (issue 15).

``python -m benchmarks.hls_bench [--seconds 30] [--clients 500]``

Runs ``livecart serve --demo`` (the default 720p/480p/240p ladder from a 1280x720 source) on
127.0.0.1 twice in one sitting, once with HLS and once without (``--hls 0``), and reads the
server process's CPU from /proc over the same window: the difference is what HLS packaging
adds (the AAC encode, the fMP4 muxing thread, playlists). The server's own per-thread counters
(``hls.mux_cpu_s``, ``aac_encode_ms``) are reported beside it. Then, with HLS on, ``--clients``
CDN-shaped players (each: a blocking playlist request for the next part, then that part, in a
loop, as hls.js does at the live edge) run for ``--seconds``, and the request rate, how long a
blocking request was held and the server's CPU are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start(hls: bool, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    log = (tmp / f"server-hls{int(hls)}.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "relay.cli", "serve", "--demo", "--host", "127.0.0.1", "--port", "0"),
            *("--hls", "1" if hls else "0", "--data-dir", str(tmp / f"data{int(hls)}"), "--log-level", "warning"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"listening on (https?://\S+)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def snapshot(http: aiohttp.ClientSession, base: str) -> dict[str, object]:
    async with http.get(f"{base}/api/streams/demo") as res:
        data: dict[str, object] = await res.json()
        return data


async def wait_live(http: aiohttp.ClientSession, base: str, hls: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hls:
            async with http.get(f"{base}/hls/demo/index.m3u8") as res:
                if res.status == 200:
                    return
        elif (await snapshot(http, base))["live"]:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("demo stream not live")


async def measure_idle(hls: bool, seconds: float, tmp: Path) -> dict[str, float]:
    proc, base = start(hls, tmp)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_live(http, base, hls)
            await asyncio.sleep(5)  # past the encoders' start
            before, cpu0, t0 = await snapshot(http, base), cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            after, cpu1, t1 = await snapshot(http, base), cpu_seconds(proc.pid), time.monotonic()
    finally:
        stop(proc)
    out = {"cpu": (cpu1 - cpu0) / (t1 - t0)}
    if hls:
        hls_before, hls_after = before["hls"], after["hls"]
        assert isinstance(hls_before, dict) and isinstance(hls_after, dict)
        out["mux"] = (float(hls_after["mux_cpu_s"]) - float(hls_before["mux_cpu_s"])) / (t1 - t0)
        aac = float(str(after["aac_encode_ms"])) - float(str(before["aac_encode_ms"]))
        out["aac"] = aac / 1000 / (t1 - t0)
    return out


async def player(http: aiohttp.ClientSession, base: str, until: float, stats: dict[str, list[float]]) -> None:
    """One client at the live edge: block for the next part, fetch it, again."""
    url = f"{base}/hls/demo/240p/index.m3u8"
    async with http.get(url) as res:
        text = await res.text()
    while time.monotonic() < until:
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
        if hint is None:
            return
        name = hint.group(1)
        msn, part = (int(n) for n in name.split("-", 1)[1].removesuffix(".m4s").split("."))
        asked = time.monotonic()
        async with http.get(f"{base}/hls/demo/240p/{name}") as res:
            await res.read()
            stats["part_status"].append(res.status)
        stats["held"].append(time.monotonic() - asked)
        async with http.get(f"{url}?_HLS_msn={msn}&_HLS_part={part + 1}") as res:
            text = await res.text()
            stats["playlist_status"].append(res.status)


async def measure_clients(clients: int, seconds: float, tmp: Path) -> dict[str, float]:
    proc, base = start(True, tmp)
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            await wait_live(http, base, True)
            await asyncio.sleep(3)
            stats: dict[str, list[float]] = {"held": [], "part_status": [], "playlist_status": []}
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            until = t0 + seconds
            await asyncio.gather(*(player(http, base, until, stats) for _ in range(clients)))
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    finally:
        stop(proc)
    requests = len(stats["part_status"]) + len(stats["playlist_status"])
    ok = sum(1 for s in stats["part_status"] + stats["playlist_status"] if s == 200)
    return {
        "requests_per_s": requests / (t1 - t0),
        "ok_fraction": ok / max(1, requests),
        "held_median_s": statistics.median(stats["held"]) if stats["held"] else float("nan"),
        "cpu": (cpu1 - cpu0) / (t1 - t0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        off = await measure_idle(False, args.seconds, tmp)
        on = await measure_idle(True, args.seconds, tmp)
        print(f"server CPU, demo stream, default ladder: HLS off {off['cpu']:.3f} cores, on {on['cpu']:.3f} cores")
        print(f"  difference (HLS packaging): {on['cpu'] - off['cpu']:+.3f} cores")
        print(f"  counters: fMP4 muxing thread {on['mux']:.4f} cores, AAC encode {on['aac']:.4f} cores")
        if args.clients:
            load = await measure_clients(args.clients, args.seconds, tmp)
            print(
                f"{args.clients} blocking clients on 240p: {load['requests_per_s']:.0f} requests/s, "
                f"{load['ok_fraction'] * 100:.1f} % 200, part held {load['held_median_s'] * 1000:.0f} ms (median), "
                f"server CPU {load['cpu']:.3f} cores"
            )


if __name__ == "__main__":
    asyncio.run(main())
