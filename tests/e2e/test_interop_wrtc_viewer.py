"""Interop (issue 7): Google's libwebrtc (npm @roamhq/wrtc) as a WHEP viewer.

The prebuilt libwebrtc in @roamhq/wrtc 0.8-0.10 has no H.264 (it offers VP8, VP9 and AV1 only)
and LiveCart sends H.264 only, so such a viewer cannot watch: it must get a clear 400 that says
why, and the test checks that. Should a build offer H.264, the test checks it decodes instead.
"""

from __future__ import annotations

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server
from tests.e2e.helpers import INTEROP, ExternalPeer, node_with


async def test_a_libwebrtc_viewer_decodes_the_publishers_frames_or_is_told_why_not(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = node_with("@roamhq/wrtc")
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    peer = await ExternalPeer.start(node, str(INTEROP / "wrtc_viewer.js"), f"{server.base}/whep/live", "4")
    try:
        result = await peer.result(60)
    finally:
        await peer.close()
        await publisher.stop(http)
    if "status" in result:
        assert result["status"] == 400
        assert result["reason"] == "no video codec in common: LiveCart sends H.264 (packetization-mode=1) only"
        return
    assert result["state"] == "connected" and result["deleteStatus"] == 200
    counters = result["counters"]
    assert result["frames"] >= 60, result["frames"]  # ~30 fps for most of 4 s
    assert counters == sorted(counters) and counters[-1] - counters[0] >= 50  # the publisher's frames, in order
    assert set(result["sizes"]) <= {"640x360", "426x240"}
    assert result["messages"][:2] == ["stream", "snapshot"]
