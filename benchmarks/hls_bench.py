"""What LL-HLS and recording cost the server, and how many blocking playlist clients it serves (issue 15).

``python -m benchmarks.hls_bench [--seconds 30] [--rounds 2] [--clients 500]``

A WHIP publisher (1280x720 H.264 and Opus, made in this process, pinned to the last CPU) feeds a
``livecart serve`` (pinned to CPU 0, the default 720p/480p/240p ladder) on 127.0.0.1 in three
modes, in one sitting and alternating ``--rounds`` times: WebRTC only (``--hls 0 --record 0``),
with LL-HLS (``--hls 1 --record 0``), and with LL-HLS and recording (``--hls 1 --record 1``).
The server process's CPU is read from /proc over the same window in each; the differences are
what HLS packaging (the AAC encode, the fMP4 muxing thread, playlists) and recording (the
writing thread, its queue on the loop) add. The server's own per-thread counters
(``hls.mux_cpu_s``, ``aac_encode_ms``, ``hls.recorder.write_cpu_s``) and the event loop thread's CPU
(from /proc/PID/task) are reported beside it: the encoders' CPU varies by a few % of a core from
one run to the next, more than HLS adds, so the loop's extra CPU plus those threads' own is the
figure that isolates HLS.
Then, with HLS on, ``--clients`` CDN-shaped players (each: a blocking playlist request for the
next part, then that part, in a loop, as hls.js does at the live edge) run for ``--seconds``,
and the request rate, how long a blocking request was held and the server's CPU are reported.
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

from benchmarks.peers import WhipPublisher

TICKS = os.sysconf("SC_CLK_TCK")
STREAM = "shop"
KEY = "hls-bench-publish-key"
MODES = {"webrtc": ("0", "0"), "hls": ("1", "0"), "hls+rec": ("1", "1")}  # --hls, --record


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the process's threads so far, summed by thread name (the loop is the first)."""
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "loop" if task.name == str(pid) else (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = re.sub(r"[-_:]?\d+$", "", name) or name  # "ThreadPoolExecutor-0_1" and its siblings: one row
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return totals


def start(mode: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    hls, record = MODES[mode]
    config = tmp / "bench.toml"
    config.write_text(f'[streams.{STREAM}]\npublish_key = "{KEY}"\n')
    data = tmp / f"data-{mode}-{time.monotonic_ns()}"
    log = (tmp / f"server-{mode}.log").open("a")
    pin = ["taskset", "-c", "0"] if os.cpu_count() and os.cpu_count() > 1 else []  # type: ignore[operator]
    proc = subprocess.Popen(
        [
            *pin,
            *(sys.executable, "-m", "relay.cli", "serve", "--config", str(config), "--host", "127.0.0.1"),
            *("--port", "0", "--hls", hls, "--record", record, "--data-dir", str(data), "--log-level", "warning"),
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
    raise RuntimeError(f"server did not start: see {log.name}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def snapshot(http: aiohttp.ClientSession, base: str) -> dict[str, object]:
    async with http.get(f"{base}/api/streams/{STREAM}") as res:
        data: dict[str, object] = await res.json()
        return data


async def wait_live(http: aiohttp.ClientSession, base: str, hls: bool, timeout: float = 30) -> None:
    """Bounded poll: the stream's rungs are encoding (and, with HLS, its playlist is served)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await snapshot(http, base)
        rungs = snap.get("rungs")
        encoding = isinstance(rungs, list) and any(r.get("frames_out", 0) > 30 for r in rungs)
        if encoding and not hls:
            return
        if encoding:
            async with http.get(f"{base}/hls/{STREAM}/index.m3u8") as res:
                if res.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"stream {STREAM} not live within {timeout} s")


def _hls_counters(snap: dict[str, object]) -> tuple[float, float, float, int]:
    """(mux thread s, AAC encode s, recorder thread s, bytes recorded) so far."""
    hls = snap.get("hls")
    if not isinstance(hls, dict):
        return 0.0, 0.0, 0.0, 0
    recorder = hls.get("recorder") or {}
    return (
        float(hls["mux_cpu_s"]),
        float(str(snap.get("aac_encode_ms") or 0)) / 1000,
        float(recorder.get("write_cpu_s", 0.0)),
        int(recorder.get("bytes_written", 0)),
    )


class Published:
    """A server in one mode with the publisher on it (an async context)."""

    def __init__(self, mode: str, tmp: Path) -> None:
        self.mode, self.tmp = mode, tmp

    async def __aenter__(self) -> tuple[subprocess.Popen[str], str, aiohttp.ClientSession]:
        self.proc, self.base = start(self.mode, self.tmp)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.publisher = WhipPublisher(self.base, STREAM, KEY, width=1280, height=720, h264=True, audio=True)
        try:
            await self.publisher.start(self.http)
            await wait_live(self.http, self.base, MODES[self.mode][0] == "1")
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self.proc, self.base, self.http

    async def __aexit__(self, *_exc: object) -> None:
        try:
            await self.publisher.stop(self.http)
        except (aiohttp.ClientError, OSError):
            pass
        await self.http.close()
        stop(self.proc)


async def measure_mode(mode: str, seconds: float, tmp: Path) -> dict[str, float]:
    async with Published(mode, tmp) as (proc, base, http):
        await asyncio.sleep(5)  # past the encoders' start (a warm-up, not a synchronisation)
        before, cpu0, t0 = await snapshot(http, base), cpu_seconds(proc.pid), time.monotonic()
        threads0 = thread_cpu(proc.pid)
        await asyncio.sleep(seconds)  # the measuring window
        after, cpu1, t1 = await snapshot(http, base), cpu_seconds(proc.pid), time.monotonic()
        threads1 = thread_cpu(proc.pid)
    span = t1 - t0
    c0, c1 = _hls_counters(before), _hls_counters(after)
    threads = {f"thread {name}": (spent - threads0.get(name, 0.0)) / span for name, spent in threads1.items()}
    return {
        **threads,
        "cpu": (cpu1 - cpu0) / span,
        "mux": (c1[0] - c0[0]) / span,
        "aac": (c1[1] - c0[1]) / span,
        "rec": (c1[2] - c0[2]) / span,
        "rec_mbit": (c1[3] - c0[3]) * 8 / 1e6 / span,
    }


async def player(http: aiohttp.ClientSession, base: str, until: float, stats: dict[str, list[float]]) -> None:
    """One client at the live edge: block for the next part, fetch it, again."""
    url = f"{base}/hls/{STREAM}/240p/index.m3u8"
    async with http.get(url) as res:
        text = await res.text()
    while time.monotonic() < until:
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
        if hint is None:
            return
        name = hint.group(1)
        msn, part = (int(n) for n in name.split("-", 1)[1].removesuffix(".m4s").split("."))
        asked = time.monotonic()
        async with http.get(f"{base}/hls/{STREAM}/240p/{name}") as res:
            await res.read()
            stats["part_status"].append(res.status)
        stats["held"].append(time.monotonic() - asked)
        async with http.get(f"{url}?_HLS_msn={msn}&_HLS_part={part + 1}") as res:
            text = await res.text()
            stats["playlist_status"].append(res.status)


async def measure_clients(clients: int, seconds: float, tmp: Path) -> dict[str, float]:
    async with Published("hls", tmp) as (proc, base, http):
        await asyncio.sleep(3)  # a few parts in the window (a warm-up, not a synchronisation)
        stats: dict[str, list[float]] = {"held": [], "part_status": [], "playlist_status": []}
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        until = t0 + seconds
        await asyncio.gather(*(player(http, base, until, stats) for _ in range(clients)))
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
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
    parser.add_argument("--rounds", type=int, default=2, help="each mode this many times, alternating")
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    if cpus > 1:
        os.sched_setaffinity(0, {cpus - 1})  # the publisher and the clients, off the server's CPU
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        for round_ in range(args.rounds):
            for mode in MODES:
                result = await measure_mode(mode, args.seconds, tmp)
                runs[mode].append(result)
                print(
                    f"round {round_ + 1} {mode:8s} server {result['cpu']:.3f} cores; threads: mux {result['mux']:.4f}, "
                    f"AAC {result['aac']:.4f}, recorder {result['rec']:.4f}; recorded {result['rec_mbit']:.2f} Mbit/s",
                    flush=True,
                )
        median = {
            mode: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in {k for r in rs for k in r}}
            for mode, rs in runs.items()
        }
        base = median["webrtc"]["cpu"]
        print(
            f"median of {args.rounds} x {args.seconds:g} s, server CPU (cores) on a 1280x720 publisher, default ladder:"
        )
        for mode in MODES:
            m = median[mode]
            print(
                f"  {mode:8s} {m['cpu']:.3f} ({m['cpu'] - base:+.3f} vs WebRTC only); threads: mux {m['mux']:.4f}, "
                f"AAC {m['aac']:.4f}, recorder {m['rec']:.4f}"
            )
        loop0 = median["webrtc"].get("thread loop", 0.0)
        print("  attributed (the loop's extra CPU + the HLS threads' own: mux, AAC, recorder), cores:")
        for mode in list(MODES)[1:]:
            m = median[mode]
            print(f"  {mode:8s} {m.get('thread loop', 0.0) - loop0 + m['mux'] + m['aac'] + m['rec']:+.3f}")
        names = sorted({k for m in median.values() for k in m if k.startswith("thread ")})
        print("  by thread (cores):", ", ".join(names))
        for mode in MODES:
            print(f"  {mode:8s} " + "  ".join(f"{median[mode].get(k, 0.0):.3f}" for k in names))
        if args.clients:
            load = await measure_clients(args.clients, args.seconds, tmp)
            print(
                f"{args.clients} blocking clients on 240p: {load['requests_per_s']:.0f} requests/s, "
                f"{load['ok_fraction'] * 100:.1f} % 200, part held {load['held_median_s'] * 1000:.0f} ms (median), "
                f"server CPU {load['cpu']:.3f} cores"
            )


if __name__ == "__main__":
    asyncio.run(main())
