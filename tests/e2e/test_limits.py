"""Limits not covered elsewhere (issue 7): viewers in total, and sessions still connecting."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import start_server, stop_server, wait_until, write_config
from tests.e2e.helpers import viewer_offer


async def _post_offer(http: aiohttp.ClientSession, url: str) -> tuple[int, str, dict[str, str]]:
    """POST a viewer offer from a peer that never applies the answer: it never connects."""
    async with http.post(url, data=await viewer_offer(), headers={"Content-Type": "application/sdp"}) as res:
        return res.status, (await res.text()).strip(), dict(res.headers)


async def test_viewers_of_all_streams_together_are_capped(tmp_path: Path) -> None:
    config = write_config(tmp_path / "livecart.toml", "")
    server = start_server(["--config", str(config), "--max-viewers-total", "2"], tmp_path / "server.log")
    viewers = [
        WhepViewer(server.base, "live", read_pattern=False),
        WhepViewer(server.base, "second", read_pattern=False),
    ]
    try:
        async with aiohttp.ClientSession() as http:
            for viewer in viewers:
                await viewer.start(http)
            status, reason, headers = await _post_offer(http, f"{server.base}/whep/live")
            assert status == 503 and "limit of 2 viewers" in reason and "Retry-After" in headers
            await viewers[0].stop(http)
            viewers.pop(0)

            async def room_again() -> bool:  # the departed viewer's slot frees as its session closes
                status, _, _ = await _post_offer(http, f"{server.base}/whep/live")
                return status == 201

            await wait_until(room_again, 10)
    finally:
        async with aiohttp.ClientSession() as http:
            for viewer in viewers:
                await viewer.stop(http)
        assert stop_server(server) == 0
        assert "Traceback" not in server.log()


async def test_sessions_still_connecting_are_capped_and_dropped_after_the_setup_timeout(tmp_path: Path) -> None:
    config = write_config(tmp_path / "livecart.toml", "")
    text = config.read_text().replace("setup_timeout_s = 10", "setup_timeout_s = 2")
    config.write_text(text)
    server = start_server(["--config", str(config), "--max-connecting", "2"], tmp_path / "server.log")
    url = f"{server.base}/whep/live"
    try:
        async with aiohttp.ClientSession() as http:
            assert (await _post_offer(http, url))[0] == 201
            assert (await _post_offer(http, url))[0] == 201
            status, reason, headers = await _post_offer(http, url)
            assert status == 503 and "still connecting" in reason and "Retry-After" in headers

            async def admitted_again() -> bool:  # the two silent sessions are dropped after 2 s
                return (await _post_offer(http, url))[0] == 201

            await wait_until(admitted_again, 15, interval=0.5)
        assert "not connected within 2 s" in server.log()
    finally:
        assert stop_server(server) == 0
        assert "Traceback" not in server.log()
