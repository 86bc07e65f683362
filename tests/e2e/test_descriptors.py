"""Run right on a stock machine (issue 19): the open-files limit.

Servers run under ``prlimit`` with stock Debian's soft limit of 1,024. Viewers are the cheap
ones of ``livecart bench`` (no decoding) on a one-rung 240p stream without audio, so the test
costs handshakes, not media.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from benchmarks.benchstats import Mark, window
from benchmarks.loadviewer import JoinFailed, LoadViewer
from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, start_server, stop_server, wait_until

BATCH = 50  # viewers joining at once (well under max_connecting)

CONFIG = """
[limits]
posts_per_s_per_ip = 100000
posts_burst = 100000
max_publishers = 20
max_viewers_per_stream = 5000
max_connecting = 400
setup_timeout_s = 20
media_timeout_s = 10

[transcode]
fps = 15

[streams.demo]
publish_key = "{key}"
[[streams.demo.ladder]]
name = "240p"
width = 426
height = 240
kbps = 100

{extra}
"""


def _publisher_streams(count: int) -> str:
    rung = '[[streams.p{n}.ladder]]\nname = "240p"\nwidth = 426\nheight = 240\nkbps = 100\n'
    return "\n".join(f'[streams.p{n}]\npublish_key = "{PUBLISH_KEY}"\n' + rung.format(n=n) for n in range(count))


@pytest.fixture(autouse=True)
def _enough_descriptors_here() -> None:
    """The test process holds the other end of every viewer: give it room (or skip)."""
    if shutil.which("prlimit") is None:
        pytest.skip("needs prlimit (util-linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"this process may open only {hard} descriptors")
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))


def _start(tmp: Path, nofile: str, *, demo: bool = True, extra: str = "", loop: str = "uvloop") -> Server:
    config = tmp / "livecart.toml"
    config.write_text(CONFIG.format(key=PUBLISH_KEY, extra=extra))
    args = ["--config", str(config), "--loop", loop, *(["--demo"] if demo else [])]
    return start_server(args, tmp / "server.log", prefix=["prlimit", f"--nofile={nofile}", "--"])


def _stop_cleanly(server: Server) -> str:
    code = stop_server(server)
    log = server.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "exception was never retrieved" not in log, log[-5000:]
    return log


@dataclass
class Responses:
    """Every WHIP/WHEP POST answer the client saw: status, Retry-After, and the reason."""

    seen: list[tuple[int, str | None]] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def ended(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
            if params.method == "POST":
                self.seen.append((params.response.status, params.response.headers.get("Retry-After")))

        config.on_request_end.append(ended)
        return config


async def _join(http: aiohttp.ClientSession, count: int, stream: str = "demo") -> tuple[list[LoadViewer], list[str]]:
    """Join ``count`` cheap viewers, ``BATCH`` at a time; returns (joined, refusal texts)."""
    joined: list[LoadViewer] = []
    refused: list[str] = []
    for start in range(0, count, BATCH):
        batch = [
            LoadViewer(http_base(http), stream, rendition=None, audio=False) for _ in range(min(BATCH, count - start))
        ]
        results = await asyncio.gather(*(v.join(http, 20) for v in batch), return_exceptions=True)
        for viewer, result in zip(batch, results, strict=True):
            if result is None:
                joined.append(viewer)
                continue
            await viewer.leave(None)
            if isinstance(result, JoinFailed) and result.reason.startswith("http "):
                refused.append(str(result))
            else:
                raise AssertionError(f"a viewer failed other than by an HTTP refusal: {result!r}")
    return joined, refused


def http_base(http: aiohttp.ClientSession) -> str:
    base = getattr(http, "livecart_base", None)
    assert isinstance(base, str)
    return base


def _video_packets(viewer: LoadViewer) -> int:
    assert viewer.counter is not None
    return sum(s.count for s in viewer.counter.streams.values() if s.video)


def _all_receive(viewers: list[LoadViewer], packets: int) -> object:
    """Every viewer has seen a keyframe and ``packets`` more video packets than at ``start``."""
    start = {id(v): _video_packets(v) for v in viewers}

    async def check() -> bool:
        return all(
            v.counter is not None
            and v.counter.first_keyframe_at is not None
            and _video_packets(v) - start[id(v)] >= packets
            for v in viewers
        )

    return check


async def _api(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/streams") as res:
        assert res.status == 200
        data: dict[str, Any] = await res.json()
        return data


def _session(responses: Responses, base: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=BATCH), trace_configs=[responses.trace()])
    http.livecart_base = base  # type: ignore[attr-defined]
    return http


async def _leave_all(http: aiohttp.ClientSession, viewers: list[LoadViewer]) -> None:
    """Every viewer leaves; raises if the server did not acknowledge some DELETE (it would linger)."""
    unacknowledged = 0
    for start in range(0, len(viewers), BATCH):
        results = await asyncio.gather(*(v.leave(http) for v in viewers[start : start + BATCH]), return_exceptions=True)
        unacknowledged += sum(result is not True for result in results)
    assert not unacknowledged, f"{unacknowledged} of {len(viewers)} DELETEs were not acknowledged"


@pytest.fixture
def soft_limited(tmp_path: Path) -> Iterator[Server]:
    server = _start(tmp_path, "1024:8192")
    yield server
    _stop_cleanly(server)


async def test_a_soft_limit_of_1024_is_raised_and_450_viewers_all_connect_and_get_media(soft_limited: Server) -> None:
    base = soft_limited.base
    responses = Responses()
    async with _session(responses, base) as http:
        viewers, refused = await _join(http, 450)
        try:
            assert not refused, refused[:3]
            assert len(viewers) == 450
            await wait_until(_all_receive(viewers, 15), 30)  # ~1 s of 240p video each, from a keyframe
            descriptors = (await _api(http, base))["descriptors"]
            assert descriptors["limit"] == 8192
            assert descriptors["open"] > 1024  # more than the stock soft limit would have allowed
            async with http.get(f"{base}/metrics") as res:
                metrics = await res.text()
            assert "livecart_open_fds_limit 8192.0" in metrics and "livecart_open_fds " in metrics
            print(f"450 of 450 viewers connected and received video; server descriptors {descriptors}")
        finally:
            await _leave_all(http, viewers)
    assert "raised the open-files limit from 1024 to the hard limit 8192" in soft_limited.log()


@pytest.fixture(params=["uvloop", "asyncio"])
def hard_limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = _start(tmp_path, "1024:1024", loop=request.param)
    yield server
    _stop_cleanly(server)


def _marks(viewer: LoadViewer) -> dict[int, Mark]:
    assert viewer.counter is not None
    return {ssrc: s.mark() for ssrc, s in viewer.counter.streams.items()}


async def test_past_a_hard_limit_of_1024_viewers_get_503_naming_it_and_nobody_watching_loses_a_packet(
    hard_limited: Server,
) -> None:
    base = hard_limited.base
    responses = Responses()
    async with _session(responses, base) as http:
        idle = await _api(http, base)
        before = idle["descriptors"]
        assert before["limit"] == 1024
        watching, refused = await _join(http, 120)
        joined: list[LoadViewer] = []
        try:
            assert not refused, refused[:3]
            await wait_until(_all_receive(watching, 15), 30)
            start = {id(v): _marks(v) for v in watching}
            loop = asyncio.get_running_loop()
            began = loop.time()
            joined, refused = await _join(http, 330)  # ~450 viewers want ~1,400 descriptors
            assert refused, "no viewer was refused: the test did not reach the limit"
            for text in refused:
                assert text.startswith("http 503: ") and "open-files limit" in text, text
            refusals = [(status, retry) for status, retry in responses.seen if status != 201]
            assert len(refusals) == len(refused) and all(s == 503 and retry for s, retry in refusals), refusals[:3]
            # Every viewer that got 201 receives media, those already watching included...
            await wait_until(_all_receive(watching + joined, 15), 30)
            wall = loop.time() - began
            # ...and those already watching lost nothing while the others were turned away.
            for viewer in watching:
                assert viewer.counter is not None
                for ssrc, stream in viewer.counter.streams.items():
                    got = window(stream.video, start[id(viewer)][ssrc], stream.mark(), wall)
                    assert got.received == got.seq_span, f"a watching viewer lost {got.seq_span - got.received}"
            during = (await _api(http, base))["descriptors"]
            # Admission stopped before the limit, well inside its reserve (the reserve is also for
            # what admission cannot foresee: the keep-alive connections a client opens later).
            assert during["open"] <= 1024 - during["reserve"] // 2, during
            print(f"admitted {len(watching) + len(joined)}, refused {len(refused)}, fds {during}")
        finally:
            await _leave_all(http, watching + joined)

    # Nothing leaked: with the client's keep-alive connections gone too, the server is back to
    # the descriptors and tasks of an idle server.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:

        async def released() -> bool:
            snap = await _api(fresh, base)
            return bool(
                snap["sessions"]["viewers"] == 0
                and snap["process"]["udp_sockets"] == 0
                and snap["descriptors"]["open"] <= before["open"] + 2
                and snap["process"]["asyncio_tasks"] <= idle["process"]["asyncio_tasks"] + 2
            )

        try:
            await wait_until(released, 20)
        except TimeoutError:
            raise AssertionError(f"not released: {idle} -> {await _api(fresh, base)}") from None


@pytest.fixture
def publisher_limited(tmp_path: Path) -> Iterator[Server]:
    server = _start(tmp_path, "200:200", demo=False, extra=_publisher_streams(6))
    yield server
    _stop_cleanly(server)


async def test_at_the_limit_publishers_get_503_naming_it_and_every_admitted_publisher_is_live(
    publisher_limited: Server,
) -> None:
    base = publisher_limited.base
    responses = Responses()
    async with _session(responses, base) as http:
        # Fill the descriptors with cheap viewers of an idle stream until the server refuses one.
        viewers, refused = await _join(http, 80, stream="p0")
        publishers = [WhipPublisher(base, f"p{n}", PUBLISH_KEY, width=320, height=180, audio=False, h264=True)
                      for n in range(1, 6)]  # fmt: skip
        live: list[WhipPublisher] = []
        try:
            assert refused and viewers, (len(viewers), refused[:2])
            for publisher in publishers[:2]:  # at the limit: refused, saying which limit
                with pytest.raises(RuntimeError, match=r"-> 503: .*open-files limit"):
                    await publisher.start(http)
                await publisher.stop(None, delete=False)
            assert responses.seen[-1][0] == 503 and responses.seen[-1][1]
            # Just enough viewers leave to make room again for a publisher or two, not for three.
            # How many: from the server's own count (the fill can end a viewer past the steady
            # state, as the client's keep-alive connections open while the viewers join).
            settled: list[dict[str, int]] = []

            async def connected() -> bool:  # every admitted viewer has opened all it will
                settled[:] = [(await _api(http, base))["descriptors"]]
                return settled[0]["pending"] == 0

            await wait_until(connected, 10)
            fds = settled[0]
            short = fds["per_publisher"] - (fds["limit"] - fds["reserve"] - fds["open"])
            leaving = max(1, -(-short // fds["per_viewer"]))
            assert leaving < len(viewers), (fds, len(viewers))
            await _leave_all(http, viewers[:leaving])
            viewers = viewers[leaving:]

            seen: list[object] = []

            async def freed() -> bool:  # the viewer is gone and so are its sockets (closed asynchronously)
                snap = await _api(http, base)
                fds = snap["descriptors"]
                room = (fds["limit"] - fds["reserve"] - fds["open"]) // fds["per_publisher"]
                seen[:] = [snap["sessions"], fds, room]
                return bool(snap["sessions"]["viewers"] == len(viewers) and room >= 1)

            try:
                await wait_until(freed, 10)
            except TimeoutError:
                raise AssertionError(f"{len(viewers)} viewers expected; sessions, descriptors, room: {seen}") from None
            results = await asyncio.gather(*(p.start(http) for p in publishers[2:]), return_exceptions=True)
            for publisher, result in zip(publishers[2:], results, strict=True):
                if result is None:
                    live.append(publisher)
                else:
                    assert isinstance(result, RuntimeError) and "-> 503: " in str(result), result
                    assert "open-files limit" in str(result), result
                    await publisher.stop(None, delete=False)
            assert live, "no publisher was admitted after viewers left"

            async def all_live() -> bool:  # every admitted publisher's frames reach its encoder
                streams = {s["name"]: s for s in (await _api(http, base))["streams"]}
                return all(any(r["frames_out"] > 10 for r in streams[p.url.rsplit("/", 1)[1]]["rungs"]) for p in live)

            await wait_until(all_live, 20)
            print(
                f"viewers {len(viewers) + leaving}, left {leaving}, refused {len(refused)}, "
                f"publishers live {len(live)} of 3, {results}"
            )
        finally:
            await asyncio.gather(*(p.stop(http) for p in live), return_exceptions=True)
            await _leave_all(http, viewers)

        async def released() -> bool:  # every refused or ended session let go of its sockets
            snap = await _api(http, base)
            return bool(snap["process"]["udp_sockets"] == 0 and snap["sessions"]["peer_connections"] == 0)

        await wait_until(released, 20)


FAULTS = Path(__file__).parent / "faults"


def _start_with_fault(tmp_path: Path, fault: str, *, demo: bool, extra: str = "") -> Server:
    config = tmp_path / "livecart.toml"
    config.write_text(CONFIG.format(key=PUBLISH_KEY, extra=extra))
    pythonpath = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p)
    return start_server(
        ["--config", str(config), *(["--demo"] if demo else [])],
        tmp_path / "server.log",
        env={"PYTHONPATH": pythonpath, "LIVECART_FAULT": fault},
    )


async def test_a_viewer_whose_media_path_fails_after_the_answer_is_told_bye_and_ended_at_once(tmp_path: Path) -> None:
    """The fast path's descriptor cannot be had after the 201 (EMFILE, injected): the viewer is
    told why on its data channel and ended, never left connected with nothing."""
    server = _start_with_fault(tmp_path, "dup-emfile", demo=True)
    try:
        async with aiohttp.ClientSession() as http:
            viewer = LoadViewer(server.base, "demo", rendition=None, audio=False, data_channel=True)
            await viewer.join(http, 20)  # 201, then ICE and DTLS come up: the failure is after both

            async def told_bye() -> bool:
                return any(json.loads(text).get("type") == "bye" for _, text in viewer.messages)

            await wait_until(told_bye, 10)
            bye = next(json.loads(t) for _, t in viewer.messages if json.loads(t).get("type") == "bye")
            assert "open-files limit" in bye["reason"], bye

            async def ended() -> bool:
                snap = await _api(http, server.base)
                return bool(snap["sessions"]["viewers"] == 0 and snap["process"]["udp_sockets"] == 0)

            await wait_until(ended, 10)
            assert _video_packets(viewer) == 0  # it never got media, and it knows why
            await viewer.leave(None)
    finally:
        log = _stop_cleanly(server)
    assert "cannot send video" in log


async def test_a_publisher_whose_media_path_fails_after_the_answer_is_told_bye_and_ended_at_once(
    tmp_path: Path,
) -> None:
    """aiortc cannot start the publisher's decoder once connected (injected): the publisher is
    told why on its control channel and ended at once, not after the media timeout."""
    server = _start_with_fault(tmp_path, "receiver-thread", demo=False, extra=_publisher_streams(1))
    try:
        async with aiohttp.ClientSession() as http:
            publisher = WhipPublisher(
                server.base, "p0", PUBLISH_KEY, width=160, height=120, audio=False, h264=True, control=True
            )
            await publisher.start(http)  # 201: the failure comes once ICE and DTLS are up
            try:
                await asyncio.wait_for(publisher.replied.wait(), 10)
                bye = json.loads(publisher.replies[0])
                assert bye["type"] == "bye" and "thread limit" in bye["reason"], bye

                async def ended() -> bool:
                    snap = await _api(http, server.base)
                    return bool(snap["sessions"]["publishers"] == 0 and snap["process"]["udp_sockets"] == 0)

                await wait_until(ended, 5)  # at once: media_timeout_s is 10
            finally:
                await publisher.stop(None, delete=False)
    finally:
        log = _stop_cleanly(server)
    assert "cannot receive video" in log
