"""Interop (issue 7): werift publishes over WHIP; viewers decode the frames it forwarded.

werift has no encoder, so the test encodes numbered frames with x264, packetises them (RFC 6184)
and hands the RTP packets to the werift process on a local UDP port, which sends them on.
"""

from __future__ import annotations

import asyncio
import fractions
import socket
import struct

import aiohttp
import av
import numpy as np

from benchmarks.pattern import draw_counter
from benchmarks.peers import WhepViewer
from relay.media.rtp import packetize_h264
from tests.e2e.conftest import PUBLISH_KEY, Server
from tests.e2e.helpers import INTEROP, ExternalPeer, node_with


async def _feed_rtp(port: int, stop: asyncio.Event) -> int:
    """Numbered 320x240 frames, x264 baseline, as RTP to 127.0.0.1:port at 30 fps."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.framerate = fractions.Fraction(30, 1)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "g": "30",
                       "x264-params": "repeat-headers=1"}  # fmt: skip
    encoder.open()
    loop = asyncio.get_running_loop()
    started = loop.time()
    seq = 0
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not stop.is_set() and n < 30 * 30:
            yuv = np.full((360, 320), 128, dtype=np.uint8)
            yuv[:240] = 70
            draw_counter(yuv[:240], n)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = n * 3000
            for packet in encoder.encode(frame):
                payloads = packetize_h264(bytes(packet))
                for i, payload in enumerate(payloads):
                    marker = 0x80 if i == len(payloads) - 1 else 0
                    header = struct.pack("!BBHII", 0x80, marker | 96, seq & 0xFFFF, n * 3000, 0x1234)
                    sock.sendto(header + payload, ("127.0.0.1", port))
                    seq += 1
            n += 1
            # The camera's clock: frames at 30 per second (not synchronisation with the test).
            await asyncio.sleep(max(0.0, started + n / 30 - loop.time()))
    return n


async def test_a_werift_publisher_reaches_viewers_with_its_frames(server: Server, http: aiohttp.ClientSession) -> None:
    node = node_with("werift")
    peer = await ExternalPeer.start(
        node, str(INTEROP / "werift_publisher.js"), f"{server.base}/whip/live", PUBLISH_KEY, "8"
    )
    stop = asyncio.Event()
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    feeder = None
    try:
        feeder = asyncio.ensure_future(_feed_rtp((await peer.next(30))["rtpPort"], stop))
        assert await peer.next(30) == {"published": True}
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
        end = await peer.result(30)
    finally:
        stop.set()
        if feeder is not None:
            await feeder
        await viewer.stop(http)
        await peer.close()
    assert end["state"] == "connected" and end["deleteStatus"] == 200 and end["forwarded"] > 100
    counters = [f.counter for f in viewer.record.frames]
    assert counters == sorted(counters) and counters[-1] - counters[0] >= 25  # the frames werift forwarded
    assert {(f.width, f.height) for f in viewer.record.frames} == {(320, 240)}
