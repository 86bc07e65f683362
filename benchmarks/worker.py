"""One benchmark worker process: ramps its share of viewers, counts, reports, leaves.

The parent sends a ``WorkerPlan`` (times are ``time.monotonic()`` values, which every process on
the machine shares) and reads ``progress`` and ``result`` messages from the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.benchstats import Mark, delivered_ratio, modular_latency_ms, window
from benchmarks.loadviewer import JoinFailed, LoadViewer
from benchmarks.peers import WhepViewer
from benchmarks.talkload import TalkCounts, TalkLoad, settle

PROGRESS_EVERY_S = 0.5
MAX_PLAUSIBLE_LATENCY_MS = 20_000


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    base: str
    stream: str
    rendition: str | None
    viewers: int
    probes: int  # decoding viewers for video latency and card latency
    start_at: float
    ramp_per_s: float
    join_timeout_s: float = 10.0
    audio: bool = True
    token: str | None = None
    fps: float = 30.0  # the source's frame rate: frames the server never sent count as lost
    comment_rate: float = 0.0  # comments a second per commenting viewer (0: no conversation)
    like_rate: float = 0.0  # like taps a second per viewer
    commenters: float = 0.5  # the share of viewers that comment
    likers: float = 1.0  # the share of viewers that tap like
    data_channel: bool = False  # viewers open the "cards" channel (as players do) even when silent

    @property
    def talks(self) -> bool:
        return self.comment_rate > 0 or self.like_rate > 0


@dataclass
class ViewerRow:
    joined: bool
    reason: str | None = None
    join_ms: float | None = None
    # Where a join's time went (ms from the POST): the answer back, ICE and DTLS done, the first
    # video packet, the first keyframe (None where the viewer never got there).
    phases_ms: tuple[float | None, float | None, float | None, float | None] | None = None
    delivered: float | None = None
    received: int = 0
    bytes: int = 0
    verified: int = 0
    verify_failed: int = 0
    verify_errors: dict[str, int] = field(default_factory=dict)


@dataclass
class WorkerResult:
    index: int
    rows: list[ViewerRow] = field(default_factory=list)
    video_latency_ms: list[float] = field(default_factory=list)
    card_latency_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU time inside the measurement window
    wall_s: float = 0.0
    talk: TalkCounts | None = None


def run(plan: WorkerPlan, queue: Any, commands: Any) -> None:
    """Process entry point (multiprocessing, spawn).

    Reports ``("joined", index)`` once every viewer has joined or failed, then waits for the
    measurement window ``(start, end)`` on ``commands``: the parent opens it only when every
    worker has joined, so no viewer is still connecting while packets are counted.
    """
    logging.basicConfig(level=logging.ERROR)
    try:
        import uvloop

        uvloop.run(_main(plan, queue, commands))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_main(plan, queue, commands))


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))


async def _main(plan: WorkerPlan, queue: Any, commands: Any) -> None:
    viewers: list[LoadViewer] = []
    rows: list[ViewerRow] = []
    probes: list[WhepViewer] = []
    result = WorkerResult(plan.index)
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def join_one(viewer: LoadViewer) -> None:
            try:
                await viewer.join(http, plan.join_timeout_s)
            except JoinFailed as exc:
                failures.append(exc.reason)
            except Exception as exc:  # any other failure is reported by its class, never raised
                failures.append(type(exc).__name__)

        reporter = asyncio.ensure_future(_report(plan, queue, viewers, failures))
        joins = []
        await _sleep_until(plan.start_at)
        for _ in range(plan.probes):
            probe = WhepViewer(plan.base, plan.stream, rendition=plan.rendition, data_channel=True, audio=plan.audio)
            probes.append(probe)
            joins.append(asyncio.ensure_future(_start_probe(probe, http, failures)))
        for n in range(plan.viewers):
            await _sleep_until(plan.start_at + n / plan.ramp_per_s)
            viewer = LoadViewer(
                plan.base, plan.stream, rendition=plan.rendition, audio=plan.audio, token=plan.token,
                data_channel=plan.talks or plan.data_channel,
            )  # fmt: skip
            viewers.append(viewer)
            joins.append(asyncio.ensure_future(join_one(viewer)))
        await asyncio.gather(*joins)
        queue.put(("joined", plan.index))
        window_start, window_end = await asyncio.get_running_loop().run_in_executor(None, commands.get)

        talk = None
        if plan.talks:
            talk = TalkLoad(
                [v.channel for v in viewers], plan.comment_rate, plan.like_rate, plan.commenters, likers=plan.likers
            )
            for viewer in viewers:
                viewer.on_message = talk.on_message
        talking = asyncio.ensure_future(talk.run(window_start, window_end, plan.index)) if talk else None
        await _sleep_until(window_start)
        marks = {id(v): _marks(v) for v in viewers}
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        await _sleep_until(window_end)
        if talking is not None and talk is not None:
            await talking
            await settle(talk, 3.0)  # the last comments' answers are still on their way
            result.talk = talk.counts
        result.cpu_s = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        result.wall_s = wall
        for viewer in viewers:
            rows.append(_row(viewer, marks[id(viewer)], wall, plan.fps))
        for probe in probes:
            result.video_latency_ms.extend(_video_latencies(probe, wall0, window_end))
            result.card_latency_ms.extend(_card_latencies(probe))
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await asyncio.gather(*(v.leave(http) for v in viewers), return_exceptions=True)
        await asyncio.gather(*(p.stop(http) for p in probes), return_exceptions=True)
    for reason in failures:
        rows.append(ViewerRow(joined=False, reason=reason))
    result.rows = rows
    queue.put(("result", plan.index, result))


async def _start_probe(probe: WhepViewer, http: aiohttp.ClientSession, failures: list[str]) -> None:
    try:
        await probe.start(http)
    except Exception as exc:
        failures.append(f"probe: {type(exc).__name__}")


def _marks(viewer: LoadViewer) -> dict[int, tuple[bool, Mark]]:
    counter = viewer.counter
    if counter is None:
        return {}
    return {ssrc: (s.video, s.mark()) for ssrc, s in counter.streams.items()}


def _row(viewer: LoadViewer, start: dict[int, tuple[bool, Mark]], wall: float, fps: float) -> ViewerRow:
    counter = viewer.counter
    if counter is None or viewer.location is None:
        return ViewerRow(joined=False, reason="not joined")
    windows = []
    for ssrc, stream in counter.streams.items():
        begin = start.get(ssrc, (stream.video, (0, 0, -1, 0, 0)))[1]
        windows.append(window(stream.video, begin, stream.mark(), wall, fps))
    join_ms = None
    if counter.first_keyframe_at is not None:
        join_ms = (counter.first_keyframe_at - counter.posted_at) * 1000

    def since_post(at: float | None) -> float | None:
        return None if at is None else (at - counter.posted_at) * 1000

    phases = (
        since_post(viewer.answered_at),
        since_post(viewer.connected_at),
        since_post(counter.first_video_at),
        since_post(counter.first_keyframe_at),
    )
    return ViewerRow(
        joined=True,
        join_ms=join_ms,
        phases_ms=phases,
        delivered=delivered_ratio(windows, reference_rate=1.0),
        received=sum(w.received for w in windows),
        bytes=sum(w.bytes for w in windows),
        verified=counter.verified,
        verify_failed=counter.verify_failed,
        verify_errors=dict(counter.verify_errors),
    )


def _video_latencies(probe: WhepViewer, start: float, end: float) -> list[float]:
    """Glass-to-glass: decode time minus the capture time the publisher drew into the frame."""
    offset = time.time() - time.monotonic()
    latencies = (
        float(modular_latency_ms(round((f.at + offset) * 1000), f.counter))
        for f in probe.record.frames
        if start <= f.at <= end and f.counter >= 0
    )
    return [ms for ms in latencies if ms < MAX_PLAUSIBLE_LATENCY_MS]  # a misread stamp is noise


def _card_latencies(probe: WhepViewer) -> list[float]:
    """Card delivery: arrival on the data channel minus the time the publisher posted it."""
    offset = time.time() - time.monotonic()
    latencies = []
    for text, at in zip(probe.record.messages, probe.record.message_times, strict=False):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(text)
            if message.get("type") == "card" and message.get("action") == "show":
                posted = float(str(message["card"].get("subtitle", "")).removeprefix("posted "))
                latencies.append((at + offset - posted) * 1000)
    return latencies


async def _report(plan: WorkerPlan, queue: Any, viewers: list[LoadViewer], failures: list[str]) -> None:
    while True:
        connected = sum(1 for v in viewers if v.pc.connectionState == "connected")
        packets = 0
        octets = 0
        for viewer in viewers:
            if viewer.counter is not None:
                for stream in viewer.counter.streams.values():
                    packets += stream.count
                    octets += stream.bytes
        queue.put(("progress", plan.index, time.monotonic(), connected, len(failures), packets, octets))
        await asyncio.sleep(PROGRESS_EVERY_S)
