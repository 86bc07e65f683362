"""The watch page over LL-HLS in Chromium (issue 15): ``?mode=hls`` plays with hls.js, frames
advance, a card shown through the host API appears over the video, and glass-to-glass latency
(by program-date-time: the demo stamps each frame with the wall clock it was made at) is
reported; with WebRTC blocked the page falls back to HLS by itself."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.peers import WhipPublisher
from relay.identity import mint
from tests.browser.conftest import KEY
from tests.e2e.conftest import Server, start_server, stop_server, write_config

DEMO_KEY = "hls-demo-key-0123456789"
VIP_SECRET = "hls-vip-viewer-secret-0123456789-0123456789"

# Every RTCPeerConnection the page makes may only use relay candidates, and there is no TURN
# server: ICE never connects, as for a viewer whose network drops UDP.
BLOCK_WEBRTC = """
(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config) {
    return new Native({ ...(config || {}), iceServers: [], iceTransportPolicy: "relay" });
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hls-browser")
    vip = f'[streams.vip]\npublish_key = "{KEY}"\nviewer_secret = "{VIP_SECRET}"\n'
    config = write_config(tmp / "livecart.toml", f'[streams.demo2]\npublish_key = "{KEY}"\n{vip}')
    server = start_server(
        ["--config", str(config), "--demo", "--data-dir", str(tmp / "data")],
        tmp / "server.log",
        env={"LIVECART_DEMO_KEY": DEMO_KEY},
    )
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


async def wait_for(page: Any, expression: str, timeout_s: float) -> Any:
    await page.wait_for_function(expression, timeout=timeout_s * 1000)
    return await page.evaluate(expression)


async def frames_shown(page: Any) -> int:
    count: int = await page.evaluate(
        "() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
    )
    return count


async def host(http: aiohttp.ClientSession, server: Server, path: str, body: object | None = None) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with http.post(f"{server.base}/api/streams/demo/cards{path}", json=body, headers=headers) as res:
        assert res.status in (200, 201), await res.text()


async def test_watch_mode_hls_plays_shows_a_card_and_reports_latency(
    demo_server: Server, browser: Any, artifacts: Path
) -> None:
    page = await browser.new_page()
    async with aiohttp.ClientSession() as http:
        try:
            await page.goto(f"{demo_server.base}/watch/demo?mode=hls")
            assert await wait_for(page, "() => window.livecartPlayer.transport", 5) == "hls"
            await page.wait_for_function("() => document.getElementById('video').currentTime > 0", timeout=30_000)
            before = await frames_shown(page)
            await page.wait_for_function(
                f"() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {before + 30}",
                timeout=20_000,
            )
            card = {
                "id": "hls-mug",
                "title": "HLS mug",
                "price": "9.90",
                "currency": "EUR",
                "image_url": "/static/product.svg",
                "buy_url": "https://shop.example/mug",
            }
            await host(http, demo_server, "", card)
            shown_at = time.monotonic()
            await host(http, demo_server, "/hls-mug/show")
            await page.wait_for_selector('.card[data-id="hls-mug"]', timeout=15_000)
            card_after = time.monotonic() - shown_at
            title = await page.text_content('.card[data-id="hls-mug"] .card-title')
            assert title == "HLS mug"
            # Glass to glass: now minus the program-date-time of the frame on screen, sampled.
            samples = []
            for _ in range(10):
                stats = await page.evaluate("() => window.livecartPlayer.hls")
                if stats and stats["glassToGlass"] is not None:
                    samples.append(stats["glassToGlass"])
                await asyncio.sleep(0.3)  # spacing between samples of a running measurement
            await page.click("#stats-toggle")
            panel = await page.text_content("#stats")
            assert panel is not None and "LL-HLS" in panel
            await page.screenshot(path=str(artifacts / "hls-player.png"))
            await host(http, demo_server, "/hls-mug/hide")
            await page.wait_for_selector('.card[data-id="hls-mug"]', state="detached", timeout=15_000)
            after = await frames_shown(page)
            assert after > before + 30
        finally:
            await page.close()
    latency = statistics.median(samples)
    print(
        f"LL-HLS in Chromium: glass-to-glass {latency:.2f} s (median of {len(samples)}, "
        f"{min(samples):.2f}-{max(samples):.2f}); card on screen {card_after:.2f} s after the show call"
    )
    assert 0 < latency < 6, "within a few seconds of live (the goal, < 2.5 s, is reported in RESULTS.md)"


async def test_the_watch_page_falls_back_to_hls_when_webrtc_cannot_connect(demo_server: Server, browser: Any) -> None:
    page = await browser.new_page()
    http = aiohttp.ClientSession()
    try:
        # A card already on screen before this viewer comes: a late HLS joiner sees it too.
        card = {
            "id": "late-hat",
            "title": "Wool hat",
            "price": "19.00",
            "currency": "EUR",
            "image_url": "/static/product.svg",
            "buy_url": "https://shop.example/hat",
        }
        await host(http, demo_server, "", card)
        await host(http, demo_server, "/late-hat/show")
        await page.add_init_script(BLOCK_WEBRTC)
        started = time.monotonic()
        await page.goto(f"{demo_server.base}/watch/demo")
        await page.wait_for_function("() => window.livecartPlayer.transport === 'hls'", timeout=15_000)
        switched = time.monotonic() - started
        await page.wait_for_function("() => document.getElementById('video').currentTime > 0", timeout=30_000)
        playing = time.monotonic() - started
        before = await frames_shown(page)
        await page.wait_for_function(
            f"() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {before + 20}",
            timeout=20_000,
        )
        pc_state = await page.evaluate("() => window.livecartPlayer.pc")
        assert pc_state is None, "the WebRTC attempt was given up"
        await page.wait_for_selector('.card[data-id="late-hat"]', timeout=10_000)
        await host(http, demo_server, "/late-hat/hide")
    finally:
        await page.close()
        await http.close()
    print(f"WebRTC blocked: fell back to LL-HLS after {switched:.1f} s, playing {playing:.1f} s after load")
    assert switched >= 3.5, "WebRTC had its few seconds first"


async def test_a_protected_stream_plays_over_hls_with_the_token_of_the_page_url(
    demo_server: Server, browser: Any
) -> None:
    """hls.js fetches what the playlists name, blocking reloads included, with the viewer token
    the server added to each URI; a request without it would be refused."""
    token = mint(VIP_SECRET, "vip", int(time.time()) + 600, sub="buyer-7", name="Buyer")
    page = await browser.new_page()
    hls_requests: list[tuple[str, int]] = []
    page.on("response", lambda res: "/hls/vip/" in res.url and hls_requests.append((res.url, res.status)))
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(demo_server.base, "vip", KEY, width=640, height=360, audio=True, h264=True)
        await publisher.start(http)
        try:
            await page.goto(f"{demo_server.base}/watch/vip?mode=hls&token={token}")
            await page.wait_for_function("() => document.getElementById('video').currentTime > 0", timeout=30_000)
            before = await frames_shown(page)
            await page.wait_for_function(
                f"() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {before + 30}",
                timeout=20_000,
            )
        finally:
            await page.close()
            await publisher.stop(http)
    blocking = [url for url, _ in hls_requests if "_HLS_msn=" in url]
    assert blocking, "hls.js made blocking playlist requests"
    assert all(f"token={token}" in url for url, _ in hls_requests), [u for u, _ in hls_requests][:5]
    refused = [(url, status) for url, status in hls_requests if status != 200]
    assert not refused, refused[:5]
