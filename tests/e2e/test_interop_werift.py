"""Interop (issue 7): werift, a TypeScript WebRTC stack, watches a LiveCart stream over WHEP."""

from __future__ import annotations

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server
from tests.e2e.helpers import INTEROP, ExternalPeer, node_with


async def test_a_werift_viewer_gets_media_from_a_keyframe_on_and_the_cards_channel(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = node_with("werift")
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    peer = await ExternalPeer.start(node, str(INTEROP / "werift_viewer.js"), f"{server.base}/whep/live", "4")
    try:
        result = await peer.result(60)
    finally:
        await peer.close()
        await publisher.stop(http)
    assert result["state"] == "connected"
    assert result["counts"]["video"] > 60 and result["counts"]["audio"] > 50, result["counts"]
    assert result["keyframeStart"]  # its first video packet begins an IDR (or carries the SPS)
    assert result["messages"][:2] == ["stream", "snapshot"]  # the cards channel greets it
    assert result["deleteStatus"] == 200
