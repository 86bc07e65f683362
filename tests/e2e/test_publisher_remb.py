"""An H.264 publisher on LiveCart's own receive path gets REMB, as aiortc's path gives VP8 ones.

The receive path replaced aiortc's ``_handle_rtp_packet`` for H.264 and, with it, the
receiver-side bandwidth estimate: H.264 publishers (OBS aside: it sends at a fixed rate) got no
REMB, so their encoders climbed only on loss reports. The publisher here is a real aiortc peer;
the test reads what its RTCP handler logs on each REMB it gets.
"""

from __future__ import annotations

import logging

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, wait_until


class Rembs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bitrates: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "receiver estimated maximum bitrate" in record.getMessage():
            self.bitrates.append(int(record.args[-1]) if isinstance(record.args, tuple) else 0)


async def test_an_h264_publisher_gets_the_receivers_bandwidth_estimate(
    server: Server, http: aiohttp.ClientSession
) -> None:
    sender_log = logging.getLogger("aiortc.rtcrtpsender")
    rembs = Rembs()
    level = sender_log.level
    sender_log.addHandler(rembs)
    sender_log.setLevel(logging.DEBUG)
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=640, height=360, audio=False, h264=True)
    try:
        await publisher.start(http)

        async def estimated() -> bool:
            return len(rembs.bitrates) >= 2

        await wait_until(estimated, 15)
        assert all(bitrate > 0 for bitrate in rembs.bitrates), rembs.bitrates
        async with http.get(f"{server.base}/api/streams/live") as res:
            ingest = (await res.json())["ingest"]
        assert ingest["path"] == "livecart", ingest  # the H.264 receive path, not aiortc's
        print(f"REMB bitrates seen by the publisher: {rembs.bitrates[:5]}")
    finally:
        sender_log.removeHandler(rembs)
        sender_log.setLevel(level)
        await publisher.stop(http)
