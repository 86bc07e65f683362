"""Both per-viewer send loops, compiled (relay/media/_sendloop.c) and Python (LIVECART_NATIVE=0),
deliver the publisher's pictures and sound to real aiortc viewers through a real server.

The rest of the suite runs the compiled loop (the default where it is built);
tests/unit/test_sendloop.py shows the two put the same bytes on the wire.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from relay.media import udplink
from tests.e2e.conftest import PUBLISH_KEY, Server, api, start_server, stop_server, write_config


@pytest.fixture(scope="module", params=["compiled", "python"])
def loop_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    if request.param == "compiled" and udplink._sendloop is None and shutil.which("cc") is None:
        pytest.skip("no C compiler on this machine: the compiled send loop is not built")
    tmp = tmp_path_factory.mktemp(f"loop-{request.param}")
    config = write_config(tmp / "livecart.toml", "[hls]\nenabled = false\n")
    env = {"LIVECART_NATIVE": "1" if request.param == "compiled" else "0"}
    srv = start_server(["--config", str(config), "--log-level", "info"], tmp / "server.log", env=env)
    yield srv, request.param
    assert stop_server(srv) == 0
    log = srv.log()
    assert "Traceback" not in log, log[-5000:]
    assert f"send loop: {'compiled' if request.param == 'compiled' else 'Python'}" in log


async def test_viewers_decode_the_publishers_pattern_through_either_loop(loop_server: tuple[Server, str]) -> None:
    server, loop = loop_server
    async with aiohttp.ClientSession() as http:
        assert (await api(http, server))["send_loop"] == loop
        publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=640, height=360)
        await publisher.start(http)
        viewers = [WhepViewer(server.base, "live", rendition=rung) for rung in ("480p", "240p")]
        try:
            for viewer in viewers:
                await viewer.start(http)
            await asyncio.gather(
                *(v.wait_for(lambda r: len(r.frames) >= 60 and r.audio_frames >= 10, timeout=20) for v in viewers)
            )
            sent = publisher.video.counter
            for viewer, size in zip(viewers, [(640, 360), (426, 240)], strict=True):
                frames = viewer.record.frames
                assert {(f.width, f.height) for f in frames} == {size}
                counters = [f.counter for f in frames]
                assert all(0 < c <= sent for c in counters) and counters == sorted(counters), counters[:40]
                assert len(set(counters)) >= 55
        finally:
            for viewer in viewers:
                await viewer.stop(http)
            await publisher.stop(http)
