"""Interop (issue 7): FFmpeg 8's WHIP muxer, as bundled in PyAV, publishes to LiveCart.

FFmpeg's default DTLS certificate uses curve P-224, which current OpenSSL refuses; it is given a
P-256 certificate (what the README tells users) and ``whip_flags=dtls_active``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import aiohttp
import av
import numpy as np

from benchmarks.pattern import draw_counter
from benchmarks.peers import WhepViewer
from tests.e2e.conftest import PUBLISH_KEY, Server, wait_until
from tests.e2e.helpers import p256_certificate


def _publish(url: str, cert: Path, key: Path, stop: threading.Event, errors: list[BaseException]) -> None:
    """FFmpeg's WHIP muxer sends 640x360 H.264 frames numbered in the picture, at 30 fps."""
    try:
        options = {
            "authorization": PUBLISH_KEY,
            "cert_file": str(cert),
            "key_file": str(key),
            "whip_flags": "dtls_active",
        }
        with av.open(url, "w", format="whip", options=options) as out:
            stream = out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "g": "30"}
            started = time.monotonic()
            n = 0
            while not stop.is_set() and n < 30 * 30:
                yuv = np.full((540, 640), 128, dtype=np.uint8)
                yuv[:360] = 60
                draw_counter(yuv[:360], n)
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                frame.pts = n
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
                # The camera's clock, in FFmpeg's own thread: not synchronisation with the test.
                time.sleep(max(0.0, started + n / 30 - time.monotonic()))
    except BaseException as exc:  # reported to the test, which fails with it
        errors.append(exc)


async def test_ffmpeg_whip_muxer_publishes_and_viewers_see_its_frames(server: Server, tmp_path: Path) -> None:
    cert, key = p256_certificate(tmp_path, "ffmpeg")
    stop = threading.Event()
    errors: list[BaseException] = []
    publisher = threading.Thread(target=_publish, args=(f"{server.base}/whip/live", cert, key, stop, errors))
    publisher.start()
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    try:
        async with aiohttp.ClientSession() as http:

            async def live() -> bool:
                async with http.get(f"{server.base}/api/streams/live") as res:
                    return bool((await res.json())["live"]) or bool(errors)

            await wait_until(live, 20)  # the server says the stream is live (or FFmpeg failed)
            assert not errors, errors
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
            counters = [f.counter for f in viewer.record.frames]
            assert counters == sorted(counters) and counters[-1] - counters[0] >= 25  # FFmpeg's own frames
            assert {(f.width, f.height) for f in viewer.record.frames} <= {(640, 360), (426, 240)}
            await viewer.stop(http)
    finally:
        stop.set()
        await asyncio.to_thread(publisher.join, 15)
    assert not errors, errors
    assert "ending (DELETE by client)" in server.log()  # FFmpeg said goodbye with DELETE
