"""Publishers that send Main or High profile H.264 (OBS by default, FFmpeg) are accepted and decoded."""

from __future__ import annotations

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server


@pytest.mark.parametrize(("profile", "level_id"), [("main", "4d001f"), ("high", "64001f")])
async def test_a_main_or_high_profile_publisher_is_answered_with_its_profile_and_viewers_see_it(
    server: Server, http: aiohttp.ClientSession, profile: str, level_id: str
) -> None:
    publisher = WhipPublisher(
        server.base, "live", PUBLISH_KEY, h264=True, h264_profile=profile, offer_profile_level_id=level_id
    )
    viewer = WhepViewer(server.base, "live", data_channel=False)
    try:
        await publisher.start(http)  # aiortc alone would answer 400: it negotiates baseline only
        assert f"profile-level-id={level_id}" in publisher.answer
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 15, 20)
        counters = [f.counter for f in viewer.record.frames]
        assert counters == sorted(counters) and counters[-1] > counters[0]  # the publisher's frames
        assert {(f.width, f.height) for f in viewer.record.frames} <= {(640, 360), (426, 240)}
    finally:
        await viewer.stop(http)
        await publisher.stop(http)
