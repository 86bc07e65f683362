"""``livecart bench``: load-test a LiveCart server (and, for comparison, a plain aiortc relay).

One publisher (optional, synthetic: frames stamped with their capture time, a product card every
few seconds) and N viewers spread over worker processes. Each viewer does the full WHEP
handshake and then only counts packets (``benchmarks.loadviewer``); a few probe viewers decode
to measure glass-to-glass and card latency. ``--viewers 100,200,400`` runs one level after the
other and reports the highest that still delivers ``--threshold`` of packets to every viewer;
``--against-reference`` runs the same levels against ``benchmarks.reference_relay`` as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import platform
import queue as queue_module
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.benchargs import add_arguments
from benchmarks.benchstats import percentile
from benchmarks.peers import WhepViewer, WhipPublisher
from benchmarks.serverstats import ServerSampler, local_listener_pid, metrics_sampler, proc_sampler
from benchmarks.talkload import summarise_talk
from benchmarks.worker import ViewerRow, WorkerPlan, WorkerResult
from benchmarks.worker import run as worker_run

SETTLE_S = 2.0  # after the last viewer joined, before the measurement window opens
CARD_EVERY_S = 3.0


@dataclass
class Level:
    viewers: int
    talk: bool = False  # viewers commented and liked at the bench's rates
    result: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, int, float, float]] = field(default_factory=list)  # t, connected, CPU %, Mbit/s


def summarise(
    rows: list[ViewerRow],
    results: list[WorkerResult],
    server: dict[str, float | None],
    wall_s: float,
) -> dict[str, Any]:
    """The stable JSON keys of one level (see the issue: users script against them)."""
    joined = [r for r in rows if r.joined]
    failures: dict[str, int] = {}
    for row in rows:
        if not row.joined:
            failures[row.reason or "unknown"] = failures.get(row.reason or "unknown", 0) + 1
    joins = [r.join_ms for r in joined if r.join_ms is not None]
    delivered = [r.delivered for r in joined if r.delivered is not None]
    video_latency = [ms for res in results for ms in res.video_latency_ms]
    card_latency = [ms for res in results for ms in res.card_latency_ms]
    client_cpu = sum(res.cpu_s for res in results)
    packets = sum(r.received for r in joined)
    octets = sum(r.bytes for r in joined)
    no_keyframe = sum(1 for r in joined if r.join_ms is None)
    return {
        "viewers_connected": len(joined),
        "viewers_failed": len(rows) - len(joined),
        "failures": failures,
        "viewers_without_keyframe": no_keyframe,
        "join_ms_p50": percentile(joins, 50),
        "join_ms_p95": percentile(joins, 95),
        "join_ms_p99": percentile(joins, 99),
        # p50 / p95 of each step of a join, ms from the POST (see ViewerRow.phases_ms)
        "join_phases_ms": _phases(joined),
        "delivered_ratio_min": min(delivered) if delivered else None,
        "delivered_ratio_median": percentile(delivered, 50),
        "packets_per_s": packets / wall_s if wall_s else 0.0,
        "bitrate_mbps_per_viewer": (octets * 8 / wall_s / 1e6 / len(joined)) if joined and wall_s else None,
        "video_latency_ms_p50": percentile(video_latency, 50),
        "video_latency_ms_p99": percentile(video_latency, 99),
        "card_latency_ms_p50": percentile(card_latency, 50),
        "card_latency_ms_p99": percentile(card_latency, 99),
        "server_cpu_pct": server.get("cpu_pct"),
        "server_rss_mb": server.get("rss_mb"),
        "client_cpu_pct": 100 * client_cpu / wall_s if wall_s else None,
        "packets_verified": sum(r.verified for r in joined),
        "packets_verify_failed": sum(r.verify_failed for r in joined),
        "verify_errors": _merge(r.verify_errors for r in joined),
        "window_s": wall_s,
    }


PHASES = ("answer", "connected", "first_video_packet", "first_keyframe")


def _phases(rows: list[ViewerRow]) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {}
    for i, name in enumerate(PHASES):
        values = [v for r in rows if r.phases_ms is not None and (v := r.phases_ms[i]) is not None]
        out[name] = [percentile(values, 50), percentile(values, 95)]
    return out


def _merge(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            merged[key] = merged.get(key, 0) + n
    return merged


class Runner:
    def __init__(self, args: argparse.Namespace, display: Any) -> None:
        self.args = args
        self.display = display
        self.workers_wanted = args.workers or min(4, len(os.sched_getaffinity(0)))

    async def run_level(
        self, base: str, viewers: int, sampler: ServerSampler, label: str, *, talk: bool = False
    ) -> Level:
        args = self.args
        level = Level(viewers, talk)
        count = max(1, min(self.workers_wanted, viewers))
        ctx = multiprocessing.get_context("spawn")
        reports: Any = ctx.Queue()
        start_at = time.monotonic() + 3.0  # workers import aiortc meanwhile
        window_start = window_end = float("inf")  # opened once every worker has joined its viewers
        joined: set[int] = set()
        commands = [ctx.Queue() for _ in range(count)]
        rendition = None if args.rendition == "auto" else args.rendition
        processes = []
        for index in range(count):
            share = viewers // count + (1 if index < viewers % count else 0)
            plan = WorkerPlan(
                index=index,
                base=base,
                stream=args.stream,
                rendition=rendition,
                viewers=share,
                probes=args.probes if index == 0 else 0,
                start_at=start_at + index / args.ramp,
                ramp_per_s=args.ramp / count,
                audio=not args.no_audio,
                fps=args.fps,
                comment_rate=args.comment_rate if talk else 0.0,
                like_rate=args.like_rate if talk else 0.0,
                commenters=args.commenters,
                likers=args.likers,
                data_channel=args.comment_rate > 0 or args.like_rate > 0,  # the video baseline too
            )
            process = ctx.Process(
                target=worker_run, args=(plan, reports, commands[index]), name=f"bench-worker-{index}", daemon=True
            )
            process.start()
            processes.append(process)
        results: dict[int, WorkerResult] = {}
        latest: dict[int, tuple[float, int, int, int, int]] = {}
        server_window: dict[str, float | None] = {}
        previous: dict[int, tuple[float, int, int, int, int]] = {}  # each worker's sample at the last display
        last_t = time.monotonic()
        sampled_start: tuple[float, float] | None = None
        deadline = start_at + viewers / args.ramp + args.duration + 120 + viewers * 0.05
        while len(results) < count and time.monotonic() < deadline:
            try:
                message = await asyncio.get_running_loop().run_in_executor(None, reports.get, True, 0.5)
            except queue_module.Empty:
                message = None
            now = time.monotonic()
            if message is not None and message[0] == "progress":
                latest[message[1]] = message[2:]
            elif message is not None and message[0] == "result":
                results[message[1]] = message[2]
            elif message is not None and message[0] == "joined":
                joined.add(message[1])
                if len(joined) == count:  # everyone is in (or failed): settle, then measure
                    window_start = now + SETTLE_S
                    window_end = window_start + args.duration
                    for command in commands:
                        command.put((window_start, window_end))
            if sampled_start is None and now >= window_start:
                sampled_start = (now, sampler.cpu_seconds())
            if sampled_start is not None and "cpu_pct" not in server_window and now >= window_end:
                cpu_end = sampler.cpu_seconds()
                server_window["cpu_pct"] = 100 * (cpu_end - sampled_start[1]) / (now - sampled_start[0])
                server_window["rss_mb"] = sampler.rss_mb()
            if now - last_t >= 1.0 and latest:
                connected = sum(v[1] for v in latest.values())
                failed = sum(v[2] for v in latest.values())
                rate = mbps = 0.0
                for worker, sample in latest.items():  # each worker's own clock: no aliasing
                    before = previous.get(worker)
                    if before is not None and sample[0] > before[0]:
                        rate += (sample[3] - before[3]) / (sample[0] - before[0])
                        mbps += (sample[4] - before[4]) * 8 / (sample[0] - before[0]) / 1e6
                previous = dict(latest)
                cpu = sampler.cpu_pct_since_last()
                level.timeline.append((now - start_at, connected, cpu, mbps))
                self.display(label, viewers, connected, failed, rate, cpu, now, window_start, window_end)
                last_t = now
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        if len(results) < count:
            raise RuntimeError(f"{count - len(results)} benchmark worker(s) never reported (see their stderr)")
        rows = [row for result in results.values() for row in result.rows]
        wall = max(r.wall_s for r in results.values())
        level.result = summarise(rows, list(results.values()), server_window, wall)
        level.result["viewers"] = viewers
        if talk:
            parts = [r.talk for r in results.values() if r.talk is not None]
            level.result["talk"] = summarise_talk(parts, wall)
        return level


def _capacity(levels: list[Level], threshold: float) -> dict[str, Any]:
    passing = [
        lv
        for lv in levels
        if lv.result.get("delivered_ratio_min") is not None
        and lv.result["delivered_ratio_min"] >= threshold
        and lv.result["viewers_failed"] == 0
    ]
    if not passing:
        return {"viewers": 0, "packets_per_s": 0.0, "threshold": threshold}
    best = max(passing, key=lambda lv: lv.result["packets_per_s"])
    return {"viewers": best.viewers, "packets_per_s": best.result["packets_per_s"], "threshold": threshold}


async def _wait_live(http: aiohttp.ClientSession, base: str, stream: str, timeout_s: float) -> None:
    """Wait until a viewer of the stream decodes a frame (the publisher's media made it through)."""
    probe = WhepViewer(base, stream, data_channel=False, audio=False)
    try:
        await probe.start(http)
        await probe.wait_for(lambda record: len(record.frames) > 0, timeout_s)
    finally:
        await probe.stop(http)


async def _post_cards(http: aiohttp.ClientSession, base: str, stream: str, key: str) -> None:
    """A new product card every few seconds; its subtitle carries the time it was posted."""
    headers = {"Authorization": f"Bearer {key}"}
    n = 0
    while True:
        n += 1
        card = {
            "id": f"bench-{n}",
            "title": f"Benchmark card {n}",
            "price": "9.99",
            "currency": "EUR",
            "image_url": "https://example.com/p.png",
            "buy_url": "https://example.com/buy",
            "subtitle": f"posted {time.time():.3f}",
        }
        with contextlib.suppress(aiohttp.ClientError):
            async with http.post(f"{base}/api/streams/{stream}/cards", json=card, headers=headers) as res:
                await res.read()
            async with http.post(f"{base}/api/streams/{stream}/cards/bench-{n}/show", headers=headers) as res:
                await res.read()
        await asyncio.sleep(CARD_EVERY_S)


async def run_target(
    runner: Runner, label: str, base: str, sampler: ServerSampler, levels: list[int], cards: bool
) -> list[Level]:
    args = runner.args
    done: list[Level] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        publisher = None
        card_task = None
        if args.publish == "synthetic":
            if args.key is None:
                raise SystemExit("livecart bench: --publish synthetic needs --key (the stream's publish key)")
            publisher = WhipPublisher(
                base,
                args.stream,
                args.key,
                width=1280,
                height=720,
                noisy=True,
                stamp=lambda _n: int(time.time() * 1000) & 0xFFFF,
                audio=not args.no_audio,
            )
            await publisher.start(http)
            if cards:
                card_task = asyncio.ensure_future(_post_cards(http, base, args.stream, args.key))
        talks = cards and (args.comment_rate > 0 or args.like_rate > 0)
        try:
            await _wait_live(http, base, args.stream, 20.0)
            for viewers in levels:
                if talks and args.video_baseline:  # the same level with video alone, just before
                    done.append(await runner.run_level(base, viewers, sampler, f"{label} video"))
                before = await _like_total(http, base, args.stream, args.key) if talks else None
                level = await runner.run_level(base, viewers, sampler, label, talk=talks)
                if before is not None:
                    after = await _like_total(http, base, args.stream, args.key)
                    level.result["talk"]["like_total_server_delta"] = None if after is None else after - before
                done.append(level)
        finally:
            if card_task is not None:
                card_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await card_task
            if publisher is not None:
                await publisher.stop(http)
    return done


async def _like_total(http: aiohttp.ClientSession, base: str, stream: str, key: str | None) -> int | None:
    """The stream's like total as the host API reports it (None without the key)."""
    if key is None:
        return None
    try:
        async with http.get(
            f"{base}/api/streams/{stream}/comments", headers={"Authorization": f"Bearer {key}"}
        ) as res:
            return int((await res.json())["likes"]["total"]) if res.status == 200 else None
    except (aiohttp.ClientError, ValueError, KeyError):
        return None


def _conversation_cost(levels: list[Level]) -> list[dict[str, Any]]:
    """Each talking level against the video-alone run of the same viewer count just before it."""
    out = []
    for before, level in itertools.pairwise(levels):
        if level.talk and not before.talk and before.viewers == level.viewers:
            video, talk = before.result.get("server_cpu_pct"), level.result.get("server_cpu_pct")
            out.append(
                {
                    "viewers": level.viewers,
                    "video_cpu_pct": video,
                    "talk_cpu_pct": talk,
                    "cost_pct": 100 * (talk - video) / video if video and talk is not None else None,
                }
            )
    return out


def _start_reference(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "benchmarks.reference_relay", "--port", "0", "--kbps", str(args.kbps)]
    if args.server_cpus:
        command = ["taskset", "-c", args.server_cpus, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening on "):
            return process, line.split()[-1].strip()
    raise RuntimeError("the reference relay exited before listening")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}


def _print_level(console: Any, label: str, level: Level) -> None:
    from rich.table import Table

    r = level.result
    table = Table(title=f"{label}: {level.viewers} viewers", show_header=False)

    def fmt(value: Any, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    table.add_row("connected / failed", f"{r['viewers_connected']} / {r['viewers_failed']} {r['failures'] or ''}")
    table.add_row("join ms p50/p95/p99", f"{fmt(r['join_ms_p50'])} / {fmt(r['join_ms_p95'])} / {fmt(r['join_ms_p99'])}")
    phases = r.get("join_phases_ms") or {}
    if phases:
        table.add_row(
            "  answer / connected / 1st video / keyframe (p50, p95)",
            " · ".join(f"{fmt(p50)}, {fmt(p95)}" for p50, p95 in phases.values()),
        )
    table.add_row(
        "delivered min / median", f"{fmt(r['delivered_ratio_min'], '.4f')} / {fmt(r['delivered_ratio_median'], '.4f')}"
    )
    table.add_row("packets/s (all viewers)", fmt(r["packets_per_s"], ",.0f"))
    table.add_row("Mbit/s per viewer", fmt(r["bitrate_mbps_per_viewer"], ".2f"))
    table.add_row("video latency ms p50/p99", f"{fmt(r['video_latency_ms_p50'])} / {fmt(r['video_latency_ms_p99'])}")
    table.add_row("card latency ms p50/p99", f"{fmt(r['card_latency_ms_p50'])} / {fmt(r['card_latency_ms_p99'])}")
    table.add_row("server CPU % / RSS MB", f"{fmt(r['server_cpu_pct'])} / {fmt(r['server_rss_mb'])}")
    table.add_row("client CPU %", fmt(r["client_cpu_pct"]))
    table.add_row("packets verified / failed", f"{r['packets_verified']} / {r['packets_verify_failed']}")
    talk = r.get("talk")
    if talk:
        table.add_row(
            "comments sent / echoed / refused",
            f"{talk['comments_sent']} / {talk['comments_echoed']} / {talk['comments_refused'] or 0}",
        )
        echo = f"{fmt(talk['comment_echo_ms_p50'])} / {fmt(talk['comment_echo_ms_p99'])}"
        table.add_row("comment echo ms p50/p99", echo)
        table.add_row(
            "taps sent / server total delta", f"{talk['taps_sent']} / {talk.get('like_total_server_delta', '-')}"
        )
        table.add_row("display comments received", str(talk["display_received"]))
    console.print(table)


def _server_sampler(base: str, pid: int | None) -> ServerSampler:
    """/proc for a server on this machine (found by its port), its /metrics otherwise."""
    url = urllib.parse.urlsplit(base)
    if pid is None and url.hostname in ("127.0.0.1", "localhost", "::1"):
        pid = local_listener_pid(url.port or (443 if url.scheme == "https" else 80))
    return proc_sampler(pid) if pid else metrics_sampler(base)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise SystemExit(f"livecart bench: viewer levels must be positive counts like 50 or 100,200,300, not {text!r}")
    return levels


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True)
    levels = _levels(args.viewers)
    live = Live(Text(""), console=console, transient=True, auto_refresh=False) if console.is_terminal else None
    last_print = [0.0]

    def display(
        label: str,
        viewers: int,
        connected: int,
        failed: int,
        rate: float,
        cpu: float,
        now: float,
        window_start: float,
        window_end: float,
    ) -> None:
        phase = "ramping" if now < window_start else ("measuring" if now < window_end else "leaving")
        line = f"{label} {viewers}: {phase:9} up {connected:>4} failed {failed:>3} {rate:>8,.0f} pkt/s cpu {cpu:3.0f}%"
        if live is not None:  # a terminal: one status line updated in place
            live.update(Text(line), refresh=True)
        elif now - last_print[0] >= 5:  # a log: a line every 5 s
            last_print[0] = now
            console.print(line, highlight=False)

    if live is not None:
        live.start()
    try:
        return await _run(args, console, levels, display)
    finally:
        if live is not None:
            live.stop()


async def _run(
    args: argparse.Namespace, console: Any, levels: list[int], display: Callable[..., None]
) -> dict[str, Any]:
    runner = Runner(args, display)
    base = args.target.rstrip("/")
    sampler = _server_sampler(base, args.server_pid)
    ours = await run_target(runner, "target", base, sampler, levels, cards=True)
    for level in ours:
        _print_level(console, f"target {base}" + (" (conversation)" if level.talk else ""), level)
    report: dict[str, Any] = dict(ours[-1].result)
    report["levels"] = [lv.result | {"talk_level": lv.talk} for lv in ours]
    cost = _conversation_cost(ours)
    if cost:
        report["conversation_cost"] = cost
        for c in cost:
            console.print(
                f"{c['viewers']} viewers: server CPU {c['video_cpu_pct']:.1f} % video alone, "
                f"{c['talk_cpu_pct']:.1f} % with the conversation ({c['cost_pct']:+.1f} %)",
                highlight=False,
            )
    report["capacity"] = _capacity(ours, args.threshold)
    report["machine"] = machine()
    report["command"] = (
        " ".join(["livecart", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else " ".join(sys.argv)
    )
    timelines: dict[str, list[Level]] = {"livecart": ours}
    if args.against_reference:
        process, ref_base = _start_reference(args)
        try:
            ref_levels = _levels(args.reference_viewers) if args.reference_viewers else levels
            ref = await run_target(runner, "reference", ref_base, proc_sampler(process.pid), ref_levels, cards=False)
        finally:
            process.terminate()
            process.wait(10)
        for level in ref:
            _print_level(console, "reference aiortc relay", level)
        report["reference"] = {"levels": [lv.result for lv in ref], "capacity": _capacity(ref, args.threshold)}
        ref_rate = report["reference"]["capacity"]["packets_per_s"]
        report["gain"] = report["capacity"]["packets_per_s"] / ref_rate if ref_rate else None
        timelines["reference"] = ref
        console.print(
            f"capacity at >= {args.threshold:.1%} delivered: target {report['capacity']['viewers']} viewers "
            f"{report['capacity']['packets_per_s']:,.0f} pkt/s; reference {report['reference']['capacity']['viewers']} "
            f"viewers {ref_rate:,.0f} pkt/s; gain {report['gain'] or 0:.2f}x",
            highlight=False,
        )
    if args.plot:
        from benchmarks.plot import plot_timelines

        plot_timelines(timelines, args.plot)
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(report, indent=2) + "\n")
    return report


def main(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(run(args))
    except (aiohttp.ClientError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"livecart bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    worst = report.get("delivered_ratio_min")
    return 0 if report["viewers_failed"] == 0 and worst is not None else 1


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecart bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
