"""A real aiortc publisher and real aiortc viewers through a real server over loopback."""

from __future__ import annotations

import asyncio

import aiohttp

from benchmarks.peers import ViewerRecord, WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, api, wait_until


def _stream(snapshot: dict[str, object], name: str) -> dict[str, object]:
    streams = snapshot["streams"]
    assert isinstance(streams, list)
    return next(s for s in streams if s["name"] == name)


def _rung(snapshot: dict[str, object], name: str) -> dict[str, int]:
    rungs = _stream(snapshot, name)["rungs"]
    assert isinstance(rungs, list)
    return rungs[0]  # type: ignore[no-any-return]


def _enough(n: int):  # type: ignore[no-untyped-def]
    return lambda r: len(r.frames) >= n and r.audio_frames >= 10


async def test_three_viewers_decode_the_publishers_pattern(server: Server, http: aiohttp.ClientSession) -> None:
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=640, height=360)
    await publisher.start(http)
    # Pinned to the rung that carries the source size: on auto, a busy machine's loss reports may
    # rightly move a viewer down to 240p, which is the ABR's business, not this test's.
    viewers = [WhepViewer(server.base, "live", rendition="480p") for _ in range(3)]
    try:
        for viewer in viewers:
            await viewer.start(http)
        await asyncio.gather(*(v.wait_for(_enough(60), timeout=20) for v in viewers))
        sent = publisher.video.counter
        for viewer in viewers:
            record: ViewerRecord = viewer.record
            frames = record.frames
            assert {(f.width, f.height) for f in frames} == {(640, 360)}
            counters = [f.counter for f in frames]
            # The decoded pattern is the publisher's: increasing counters the publisher did send.
            assert all(0 < c <= sent for c in counters), counters[:20]
            assert counters == sorted(counters), counters[:40]
            assert len(set(counters)) >= 55
            assert record.audio_frames >= 10
            first_after_post = frames[0].at - record.posted_at
            assert first_after_post < 2.0, f"first frame {first_after_post:.2f} s after POST"
            assert record.got("stream", live=True), record.messages
    finally:
        for viewer in viewers:
            await viewer.stop(http)
        await publisher.stop(http)


async def test_encoding_happens_once_per_stream_whatever_the_viewer_count(
    server: Server, http: aiohttp.ClientSession
) -> None:
    from tests.e2e.conftest import SECOND_KEY

    publisher = WhipPublisher(server.base, "second", SECOND_KEY, width=320, height=240, audio=False)
    await publisher.start(http)
    viewers = [WhepViewer(server.base, "second", read_pattern=False) for _ in range(10)]
    try:
        for viewer in viewers:
            await viewer.start(http)
        await asyncio.gather(*(v.wait_for(lambda r: len(r.frames) >= 60, timeout=20) for v in viewers))
        snapshot = await api(http, server)
        assert _stream(snapshot, "second")["viewers"] == 10
        rung = _rung(snapshot, "second")
        # Every source frame is encoded at most once per rung, however many watch: 10 viewers
        # decoding 60+ frames each would need 600+ encodes if encoding were per viewer.
        assert rung["encode_calls"] <= rung["frames_in"] - rung["frames_dropped"], rung
        assert rung["encode_calls"] >= 60, rung
    finally:
        for viewer in viewers:
            await viewer.stop(http)
        await publisher.stop(http)
    await wait_until(lambda: _idle(http, server), timeout=10)


async def _idle(http: aiohttp.ClientSession, server: Server) -> bool:
    sessions = (await api(http, server))["sessions"]
    assert isinstance(sessions, dict)
    return sessions["peer_connections"] == 0
