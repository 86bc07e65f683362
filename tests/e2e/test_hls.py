"""LL-HLS end to end (issue 15): a real server, a real aiortc publisher, playlists read with
``m3u8``, every part and segment decoded with PyAV, and FFmpeg's own HLS player (PyAV's) playing
a 20 s live stream from its first segment to its end."""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import av
import m3u8
import pytest

from benchmarks.pattern import read_counter
from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import Server, start_server, stop_server, wait_until, write_config

KEY = "hls-test-key-0123456789"
STREAM_S = 20


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def hls_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hls")
    config = write_config(tmp / "livecart.toml", f'[streams.hls]\npublish_key = "{KEY}"\n')
    server = start_server(["--config", str(config), "--loop", request.param], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    log = server.log()
    assert "Traceback" not in log, log[-4000:]


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url) as res:
        return res.status, dict(res.headers), await res.read()


async def live(http: aiohttp.ClientSession, server: Server, stream: str = "hls") -> bool:
    status, _, _ = await fetch(http, f"{server.base}/hls/{stream}/index.m3u8")
    return status == 200


def video_frames(data: bytes) -> list[tuple[int, int, int, bool]]:
    """(width, height, frame counter, keyframe) of every frame PyAV decodes from an fMP4 piece."""
    return [(w, h, c, k) for w, h, c, k, _ in timed_frames(data)]


def timed_frames(data: bytes) -> list[tuple[int, int, int, bool, float]]:
    with av.open(io.BytesIO(data)) as container:
        return [
            (f.width, f.height, read_counter(f.to_ndarray(format="gray")), f.key_frame, float(f.time or 0))
            for f in container.decode(video=0)
        ]


def source_paused(frames: list[float], start: float, end: float, allowed: float) -> bool:
    """Whether the frames' own times leave a gap in [start, end] that alone explains a part
    ``allowed`` seconds too long (the publisher's frames came late, not a packaging fault)."""
    times = [t for t in frames if start - 1e-3 <= t <= end + 1e-3] + [end]
    return any(b - a >= allowed for a, b in itertools.pairwise(times))


@dataclass
class PlayerRun:
    frames: list[tuple[int, int, int]] = field(default_factory=list)  # width, height, counter
    pts_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished: bool = False


def play(url: str, run: PlayerRun) -> None:
    """FFmpeg's HLS demuxer and H.264 decoder (inside PyAV) on the live playlist, from its first
    segment until the playlist stops growing (the stream ended)."""
    options = {"live_start_index": "0", "m3u8_hold_counters": "4", "http_persistent": "0"}
    try:
        with av.logging.Capture() as logs, av.open(url, options=options, timeout=15) as container:
            for frame in container.decode(video=0):
                run.frames.append((frame.width, frame.height, read_counter(frame.to_ndarray(format="gray"))))
                if frame.time is not None:
                    run.pts_s.append(float(frame.time))
        run.errors += [f"{name}: {message}" for level, name, message in logs if level <= av.logging.ERROR]
    except av.FFmpegError as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    run.finished = True


async def host_card(http: aiohttp.ClientSession, server: Server, action: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {KEY}"}
    base = f"{server.base}/api/streams/hls/cards"
    if action == "create":
        body = {
            "id": "mug",
            "title": "Stoneware mug",
            "price": "12.50",
            "currency": "EUR",
            "image_url": "/img/mug.jpg",
            "buy_url": "https://shop.example/mug",
        }
        async with http.post(base, json=body, headers=headers) as res:
            assert res.status in (200, 201), await res.text()
            event: dict[str, object] = await res.json()
            return event
    async with http.post(f"{base}/mug/{action}", headers=headers) as res:
        assert res.status == 200, await res.text()
        event = await res.json()
        return event


async def check_playlists(http: aiohttp.ClientSession, server: Server) -> tuple[dict[str, m3u8.M3U8], float]:
    """Every rung's and the audio's live playlist: the LL-HLS rules, and every part and segment
    listed decodes (video at the rung's size). Also returns the wall-clock time of media time 0,
    from a segment's EXT-X-PROGRAM-DATE-TIME and its first frame's decode time."""
    wall_at_zero: list[float] = []
    base = f"{server.base}/hls/hls"
    status, headers, body = await fetch(http, f"{base}/index.m3u8")
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert headers["Cache-Control"] == "public, max-age=1"
    master = m3u8.loads(body.decode())
    assert master.is_variant
    sizes = {p.uri.split("/")[0]: p.stream_info.resolution for p in master.playlists}
    assert sizes == {"480p": (640, 360), "240p": (426, 240)}
    for p in master.playlists:
        assert p.stream_info.bandwidth > 0 and p.stream_info.codecs.startswith("avc1.42")
        assert "mp4a.40.2" in p.stream_info.codecs and p.stream_info.audio == "aac"
    assert [m.uri for m in master.media] == ["audio/index.m3u8"]
    playlists = {}
    for track in [*sizes, "audio"]:
        status, headers, body = await fetch(http, f"{base}/{track}/index.m3u8")
        assert status == 200
        playlist = m3u8.loads(body.decode())
        playlists[track] = playlist
        part_target = playlist.part_inf.part_target
        assert 0.33 <= part_target <= 0.5
        assert playlist.server_control.can_block_reload == "YES"
        assert playlist.server_control.part_hold_back >= 3 * part_target
        assert playlist.preload_hint is not None and playlist.preload_hint.hint_type == "PART"
        complete = [s for s in playlist.segments if s.uri]
        assert len(complete) >= 4
        init_uri = playlist.segment_map[0].uri
        status, headers, init = await fetch(http, f"{base}/{track}/{init_uri}")
        assert status == 200 and headers["Cache-Control"] == "public, max-age=31536000, immutable"
        for segment in complete[1:]:  # the first may come from before the publisher's first frame
            assert 1.0 <= segment.duration <= playlist.target_duration
            assert segment.program_date_time is not None
            status, headers, data = await fetch(http, f"{base}/{track}/{segment.uri}")
            assert status == 200 and headers["Cache-Control"] == "public, max-age=31536000, immutable"
            if track == "audio":
                with av.open(io.BytesIO(init + data)) as container:
                    samples = sum(f.samples for f in container.decode(audio=0))
                    assert container.streams.audio[0].sample_rate == 48000
                # Never more audio than time (less where the publisher's own audio paused: on a
                # busy machine the test's tone track falls behind).
                assert 0 < samples / 48000 <= segment.duration + 0.03
                continue
            timed = timed_frames(init + data)
            frames = [(w, h, c, k) for w, h, c, k, _ in timed]
            assert {(w, h) for w, h, _, _ in frames} == {sizes[track]}
            assert frames[0][3], "a segment starts with a keyframe"
            wall_at_zero.append(segment.program_date_time.timestamp() - timed[0][4])
            counters = [c for _, _, c, _ in frames]
            assert counters == sorted(counters), "frames decode in order, the publisher's content"
            if segment.parts:
                pieces = []
                at = timed[0][4]
                for part in segment.parts:
                    if part.duration > part_target:  # only where the publisher's frames paused
                        times = [t for *_, t in timed]
                        assert source_paused(times, at, at + part.duration, part.duration - part_target * 0.6)
                    at += part.duration
                    status, _, piece = await fetch(http, f"{base}/{track}/{part.uri}")
                    assert status == 200
                    pieces.append(piece)
                    if part.independent:
                        alone = video_frames(init + piece)
                        assert alone and alone[0][3] and {(w, h) for w, h, _, _ in alone} == {sizes[track]}
                assert b"".join(pieces) == data, "a segment is its parts, byte for byte"
    # Every rung's dates follow one media clock (a segment cut without a keyframe, when a rung's
    # keyframe came late, decodes from its first keyframe, so its estimate is off: the rare one).
    middle = sorted(wall_at_zero)[len(wall_at_zero) // 2]
    agree = [w for w in wall_at_zero if abs(w - middle) < 0.002]
    assert len(agree) >= 0.75 * len(wall_at_zero), wall_at_zero
    return playlists, middle


async def test_a_20_s_live_stream_validates_decodes_and_plays_in_ffmpeg(hls_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(hls_server.base, "hls", KEY, width=640, height=360, h264=True)
        await publisher.start(http)
        run = PlayerRun()
        player: threading.Thread | None = None
        try:

            async def first_segment() -> bool:
                status, _, body = await fetch(http, f"{hls_server.base}/hls/hls/480p/index.m3u8")
                return status == 200 and any(s.uri for s in m3u8.loads(body.decode()).segments)

            await wait_until(lambda: live(http, hls_server), timeout=15)
            started = time.monotonic()
            await wait_until(first_segment, timeout=10)  # FFmpeg's HLS reader needs a whole segment
            player = threading.Thread(target=play, args=(f"{hls_server.base}/hls/hls/480p/index.m3u8", run))
            player.start()
            await host_card(http, hls_server, "create")
            await asyncio.sleep(4)  # the scenario: the card goes on screen 4 s into the stream
            shown = await host_card(http, hls_server, "show")
            # The scenario's timeline (the stream's length), not a synchronisation.
            await asyncio.sleep(max(0.0, STREAM_S - 2 - (time.monotonic() - started)))
            playlists, wall_at_zero = await check_playlists(http, hls_server)
            # The card, at the media time it was shown, as an open EXT-X-DATERANGE in every playlist
            # (still listed after its start left the window: a late joiner sees it on screen).
            assert isinstance(shown["pts_ms"], int)
            for playlist in playlists.values():
                ranges = [d for s in playlist.segments for d in s.dateranges]
                assert [(d.class_, d.end_date) for d in ranges] == [("com.livecart.card", None)]
                start = datetime.fromisoformat(ranges[0].start_date.replace("Z", "+00:00")).timestamp()
                assert abs(start - (wall_at_zero + shown["pts_ms"] / 1000)) < 0.003
            await asyncio.sleep(max(0.0, STREAM_S - (time.monotonic() - started)))
        finally:
            await publisher.stop(http)
        # After the end, FFmpeg's player stops by itself once the playlist has stopped growing.
        assert player is not None
        await asyncio.get_running_loop().run_in_executor(None, player.join, 60)
    assert run.finished, "FFmpeg's HLS player did not finish"
    assert run.errors == []
    assert {(w, h) for w, h, _ in run.frames} == {(640, 360)}
    counters = [c for _, _, c in run.frames]
    assert counters == sorted(counters) and len(set(counters)) == len(counters), "no frame twice, none backwards"
    played = run.pts_s[-1] - run.pts_s[0]
    print(f"FFmpeg played {len(run.frames)} frames, {played:.1f} s of media, counters {counters[0]}..{counters[-1]}")
    assert played >= STREAM_S - 4


async def test_blocking_reload_waits_for_the_part_and_bad_requests_get_one_line(hls_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"{hls_server.base}/hls/hls"
        publisher = WhipPublisher(hls_server.base, "hls", KEY, width=640, height=360, h264=True, audio=False)
        await publisher.start(http)
        try:

            async def has_parts() -> bool:
                if not await live(http, hls_server):
                    return False
                status, _, body = await fetch(http, f"{base}/240p/index.m3u8")
                if status != 200:
                    return False
                # This publisher's segment is open: it has a part and a hint of the next. (Until
                # then the playlist is the one a previous publisher's session ended on: complete
                # segments, parts listed, no hint.)
                playlist = m3u8.loads(body.decode())
                return bool(playlist.preload_hint and playlist.segments and playlist.segments[-1].parts)

            await wait_until(has_parts, timeout=15)
            _, _, body = await fetch(http, f"{base}/240p/index.m3u8")
            playlist = m3u8.loads(body.decode())
            msn = playlist.media_sequence + len(playlist.segments) - 1
            hint = playlist.preload_hint.uri
            index = len(playlist.segments[-1].parts)
            # The next part: held until it exists, then the playlist lists it (or the next segment).
            asked = time.monotonic()
            async with http.get(f"{base}/240p/index.m3u8?_HLS_msn={msn}&_HLS_part={index}") as res:
                held = time.monotonic() - asked
                assert res.status == 200 and res.headers["Cache-Control"] == "public, max-age=6"
                text = await res.text()
            assert hint in text or f"-{msn + 1}.0.m4s" in text
            assert held < 3 * playlist.target_duration
            # The preload hint's part is served once written.
            status, headers, data = await fetch(http, f"{base}/240p/{hint}")
            assert status == 200 and data and headers["Content-Type"] == "video/mp4"
            bad = {
                f"{base}/240p/index.m3u8?_HLS_msn={msn + 50}": 400,  # beyond what the spec lets a client wait for
                f"{base}/240p/index.m3u8?_HLS_part=1": 400,
                f"{base}/240p/index.m3u8?_HLS_msn=abc": 400,
                f"{base}/720p/index.m3u8": 404,  # a 640x360 source has no 720p
                f"{base}/240p/zzzz-1.m4s": 404,  # another server run's file
                f"{base}/240p/{hint.split('-')[0]}-0.99.m4s": 404,
                f"{hls_server.base}/hls/nosuch/index.m3u8": 404,
            }
            for url, expected in bad.items():
                async with http.get(url) as res:
                    text = await res.text()
                    assert res.status == expected, (url, res.status, text)
                    assert text.count("\n") == 1 and len(text) < 200, text
        finally:
            await publisher.stop(http)

        # The publisher left: within a second or so the playlists end on a complete segment,
        # with no part left to wait for (and still there for players that come late).
        async def ended() -> bool:
            _, _, body = await fetch(http, f"{base}/240p/index.m3u8")
            playlist = m3u8.loads(body.decode())
            return playlist.preload_hint is None and bool(playlist.segments) and playlist.segments[-1].uri is not None

        await wait_until(ended, timeout=10)
        async with http.get(f"{base}/index.m3u8") as res:
            assert res.status == 200


async def test_a_stream_never_live_has_no_hls(hls_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        status, _, body = await fetch(http, f"{hls_server.base}/hls/live/index.m3u8")
        assert status == 404 and b"not live" in body
