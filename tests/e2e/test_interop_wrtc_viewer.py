"""Interop (issues 7, 20): Google's libwebrtc (npm @roamhq/wrtc) as a WHEP viewer.

The prebuilt libwebrtc in @roamhq/wrtc 0.8-0.10 has no H.264 (it offers VP8, VP9 and AV1 only).
Such a viewer gets a VP8 rendition of its rung, encoded only while a VP8 viewer watches: the
test checks it decodes the publisher's frames (the pattern's counters, in order) and that the
VP8 encoder exists in /api/streams only while it watches.
"""

from __future__ import annotations

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, api, wait_until
from tests.e2e.helpers import INTEROP, ExternalPeer, node_with


async def _rungs(http: aiohttp.ClientSession, server: Server) -> list[dict[str, object]]:
    streams = (await api(http, server))["streams"]
    assert isinstance(streams, list)
    live = next(s for s in streams if s["name"] == "live")
    rungs: list[dict[str, object]] = live["rungs"]
    return rungs


async def test_a_libwebrtc_viewer_without_h264_decodes_the_publishers_frames_in_vp8(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = node_with("@roamhq/wrtc")
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)

    async def h264_encoding() -> bool:
        return any(r["codec"] == "h264" and int(str(r["frames_out"])) > 10 for r in await _rungs(http, server))

    async def vp8_encoding() -> bool:
        return any(r["codec"] == "vp8" and int(str(r["frames_out"])) > 0 for r in await _rungs(http, server))

    async def no_vp8_encoder() -> bool:
        return all(r["codec"] != "vp8" for r in await _rungs(http, server))

    try:
        await wait_until(h264_encoding, timeout=20)
        assert await no_vp8_encoder()  # live, H.264 viewers or none: no VP8 encoder runs
        peer = await ExternalPeer.start(node, str(INTEROP / "wrtc_viewer.js"), f"{server.base}/whep/live", "4")
        try:
            await wait_until(vp8_encoding, timeout=20)

            async def vp8_watched() -> bool:  # the viewer joins the VP8 rung at its first keyframe
                return any(r["codec"] == "vp8" and r["viewers"] == 1 for r in await _rungs(http, server))

            await wait_until(vp8_watched, timeout=20)
            vp8 = [r for r in await _rungs(http, server) if r["codec"] == "vp8"]
            assert [r["name"] for r in vp8] == ["480p-vp8"] and vp8[0]["viewers"] == 1  # auto starts on 480p
            result = await peer.result(60)
        finally:
            await peer.close()
        await wait_until(no_vp8_encoder, timeout=10)  # it stopped when the viewer left
    finally:
        await publisher.stop(http)
    assert "status" not in result, result  # no more "400 no video codec in common"
    assert result["state"] == "connected" and result["deleteStatus"] == 200
    counters = result["counters"]
    assert result["frames"] >= 60, result["frames"]  # ~30 fps for most of 4 s
    assert counters == sorted(counters) and counters[-1] - counters[0] >= 50  # the publisher's frames, in order
    assert set(result["sizes"]) <= {"640x360", "426x240"}
    assert result["messages"][:2] == ["stream", "snapshot"]
    print(f"libwebrtc VP8 viewer: {result['frames']} frames, counters {counters[0]}..{counters[-1]}")
