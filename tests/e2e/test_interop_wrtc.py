"""Interop (issue 7): Google's libwebrtc (npm @roamhq/wrtc) publishes VP8 over WHIP."""

from __future__ import annotations

import aiohttp

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import PUBLISH_KEY, Server
from tests.e2e.helpers import INTEROP, ExternalPeer, node_with


async def test_a_libwebrtc_publisher_reaches_viewers_with_its_own_frames(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = node_with("@roamhq/wrtc")
    peer = await ExternalPeer.start(
        node, str(INTEROP / "wrtc_publisher.js"), f"{server.base}/whip/live", PUBLISH_KEY, "8"
    )
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    try:
        assert await peer.next(30) == {"published": True}
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
        end = await peer.result(30)
    finally:
        await viewer.stop(http)
        await peer.close()
    assert end["state"] == "connected" and end["deleteStatus"] == 200
    counters = [f.counter for f in viewer.record.frames]
    assert counters == sorted(counters) and counters[-1] - counters[0] >= 25  # libwebrtc's frames, in order
