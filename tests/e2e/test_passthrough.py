"""Issue 12, acceptance 3: a High-profile publisher's frames reach the "source" rung's viewers as
they are (no encoder runs for that rung), while the lower rungs are still transcoded."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, start_server, stop_server, write_config

DIRECT = f"""
[streams.direct]
publish_key = "{PUBLISH_KEY}"
passthrough = "auto"
"""


async def test_a_high_profile_publisher_reaches_source_viewers_with_its_own_frames(tmp_path: Path) -> None:
    config = write_config(tmp_path / "livecart.toml", DIRECT)
    server = start_server(["--config", str(config)], tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            publisher = WhipPublisher(
                server.base, "direct", PUBLISH_KEY, h264=True, h264_profile="high", offer_profile_level_id="64001f"
            )
            source = WhepViewer(server.base, "direct", data_channel=False, rendition="source")
            low = WhepViewer(server.base, "direct", data_channel=False, rendition="240p")
            try:
                await publisher.start(http)
                await source.start(http)
                await low.start(http)
                await source.wait_for(lambda r: len(r.frames) >= 60, 30)
                await low.wait_for(lambda r: len(r.frames) >= 15, 30)
                async with http.get(f"{server.base}/api/streams/direct") as res:
                    stream = await res.json()
            finally:
                await source.stop(http)
                await low.stop(http)
                await publisher.stop(http)
        counters = [f.counter for f in source.record.frames]
        assert counters == sorted(counters) and len(set(counters)) == len(counters)  # in order, each once
        assert counters[-1] - counters[0] + 1 - len(counters) <= 2  # (next to) none missing
        assert {(f.width, f.height) for f in source.record.frames} == {(640, 360)}
        assert {(f.width, f.height) for f in low.record.frames} == {(426, 240)}
        rungs = {r["name"]: r for r in stream["rungs"]}
        assert list(rungs) == ["source", "240p"]  # the 480p rung would re-encode the source's own size
        assert rungs["source"]["passthrough"] and rungs["source"]["encode_calls"] == 0
        assert rungs["source"]["frames_out"] >= 60 and rungs["source"]["viewers"] == 1
        assert rungs["240p"]["encode_calls"] > 0 and not rungs["240p"]["passthrough"]
        assert stream["ingest"]["path"] == "livecart"
    finally:
        assert stop_server(server) == 0
        assert "Traceback" not in server.log()
