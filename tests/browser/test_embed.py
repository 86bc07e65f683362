"""The one-tag embed on a shop page of another origin, in Chromium (issue 15, acceptance 7).

A tiny shop site on two more ports of 127.0.0.1 (two more origins): one listed in the server's
``embed_origins``, one not. The shop page holds the snippet exactly as the host console shows
it, and a listener that records the player's events. The listed shop's page plays the demo
stream in the ``<livecart-player>``'s iframe and gets ``ready``, then ``buy`` with the card's
id when the viewer clicks Buy inside the frame; the unlisted one is refused the frame.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from tests.browser.conftest import KEY
from tests.e2e.conftest import Server, start_server, stop_server, write_config

DEMO_KEY = "embed-demo-key-0123456789"
# The shop's own code around the snippet: what the README tells a shop to write.
LISTENER = """<script>
  window.shopEvents = [];
  const player = document.querySelector("livecart-player");
  for (const name of ["ready", "offline", "buy"]) {
    player.addEventListener(name, (e) => {
      window.shopEvents.push({ type: e.type, detail: e.detail });
      const li = document.createElement("li");
      li.textContent = `${e.type} ${JSON.stringify(e.detail)}`;
      document.getElementById("events").append(li);
    });
  }
</script>"""
VIDEO_TIME = "document.getElementById('video').currentTime"


@dataclass
class Shop:
    origin: str  # listed in embed_origins
    unlisted: str  # the same pages from an origin that is not
    snippet: list[str] = field(default_factory=list)  # what the shop pasted (from the host console)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    """The shop site: its page with the pasted snippet, and a product page Buy opens."""
    holder: list[str] = []

    async def page(request: web.Request) -> web.Response:
        body = f"<!doctype html><meta charset='utf-8'><title>Shop</title><h1>Shop</h1>\n{holder[-1]}\n"
        return web.Response(text=f"{body}<ol id='events'></ol>\n{LISTENER}\n", content_type="text/html")

    async def product(request: web.Request) -> web.Response:
        name = html.escape(request.match_info["id"])
        return web.Response(text=f"<!doctype html><title>{name}</title><h1>{name}</h1>", content_type="text/html")

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/product/{id}", product)
    app.router.add_get("/favicon.ico", no_icon)
    runner = web.AppRunner(app)
    await runner.setup()
    for _ in range(2):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    listed, unlisted = (f"http://127.0.0.1:{address[1]}" for address in runner.addresses)
    try:
        yield Shop(listed, unlisted, holder)
    finally:
        await runner.cleanup()


@pytest.fixture
def embed_server(shop: Shop, tmp_path: Path) -> Iterator[Server]:
    """The demo stream, embeddable by the listed shop only."""
    config = write_config(tmp_path / "livecart.toml", f'[streams.demo2]\npublish_key = "{KEY}"\n')
    server = start_server(
        ["--config", str(config), "--demo", "--embed-origins", shop.origin, "--data-dir", str(tmp_path / "data")],
        tmp_path / "server.log",
        env={"LIVECART_DEMO_KEY": DEMO_KEY},
    )
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


async def _host(http: aiohttp.ClientSession, server: Server, path: str, body: object | None = None) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with http.post(f"{server.base}/api/streams/demo/cards{path}", json=body, headers=headers) as res:
        assert res.status in (200, 201), await res.text()


def _watch_frame(page: Any, marker: str) -> Any:
    frames = [f for f in page.frames if "/watch/" in f.url and marker in f.url]
    assert len(frames) == 1, [f.url for f in page.frames]
    return frames[0]


async def _events(page: Any, kind: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await page.evaluate(f"window.shopEvents.filter((e) => e.type === '{kind}')")
    return events


async def test_the_server_frames_the_player_for_listed_shops_only(embed_server: Server, shop: Shop) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{embed_server.base}/watch/demo") as res:
            assert res.status == 200
            assert res.headers["Content-Security-Policy"] == f"frame-ancestors 'self' {shop.origin}"
            assert shop.unlisted not in res.headers["Content-Security-Policy"]
        async with http.get(f"{embed_server.base}/host/demo") as res:
            assert res.headers["Content-Security-Policy"] == "frame-ancestors 'self'", "never framed by a shop"
        async with http.get(f"{embed_server.base}/player/embed.js") as res:
            assert res.status == 200 and "javascript" in res.content_type
            assert 'customElements.define("livecart-player"' in await res.text()


async def test_the_snippet_plays_on_a_shop_page_and_buy_reaches_its_listener(
    embed_server: Server, shop: Shop, browser: Any, artifacts: Path
) -> None:
    context = await browser.new_context()
    http = aiohttp.ClientSession()
    try:
        # The host console shows the snippet; the shop pastes it as it is.
        console = await context.new_page()
        await console.goto(f"{embed_server.base}/host/demo")
        snippet = await console.text_content("#embed-snippet")
        assert snippet == (
            f'<script src="{embed_server.base}/player/embed.js" async></script>\n'
            '<livecart-player stream="demo"></livecart-player>'
        )
        shop.snippet.append(snippet)
        await console.close()

        page = await context.new_page()
        await page.goto(f"{shop.origin}/")
        await page.wait_for_function("window.shopEvents.some((e) => e.type === 'ready')", timeout=15_000)
        frame = _watch_frame(page, f"parent={quote(shop.origin, safe='')}")
        assert (await _events(page, "ready"))[0]["detail"] == {"transport": "webrtc"}
        # It plays: the frame's video time and its presented frames move on.
        started = await frame.evaluate(VIDEO_TIME)
        shown = await frame.evaluate("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames")
        await frame.wait_for_function(f"{VIDEO_TIME} > {started} + 1", timeout=5_000)
        await frame.wait_for_function(
            f"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {shown} + 20",
            timeout=5_000,
        )
        # Compact (no quality bar) and 16:9 in the shop's layout.
        assert await frame.evaluate("getComputedStyle(document.querySelector('.controls')).display") == "none"
        box = await page.locator("livecart-player").bounding_box()
        assert box is not None and abs(box["width"] / box["height"] - 16 / 9) < 0.02, box

        card = {
            "id": "embed-mug",
            "title": "Embedded mug",
            "price": "14.00",
            "currency": "EUR",
            "image_url": "/static/product.svg",
            "buy_url": f"{shop.origin}/product/embed-mug",
        }
        await _host(http, embed_server, "", card)
        await _host(http, embed_server, "/embed-mug/show")
        buy = frame.locator(".card[data-id='embed-mug'] .buy")
        await buy.wait_for(state="visible", timeout=5_000)
        await page.screenshot(path=str(artifacts / "embed-shop.png"))

        # Default: Buy opens the card's link (the shop's product page) and tells the shop page.
        async with context.expect_page(timeout=5_000) as opened:
            await buy.click()
        product = await opened.value
        await product.wait_for_load_state()
        assert product.url == card["buy_url"]
        await page.wait_for_function("window.shopEvents.some((e) => e.type === 'buy')", timeout=5_000)
        bought = await _events(page, "buy")
        assert bought == [
            {
                "type": "buy",
                "detail": {
                    "id": "embed-mug",
                    "title": "Embedded mug",
                    "price": "14.00",
                    "currency": "EUR",
                    "url": card["buy_url"],
                },
            }
        ]
        await product.close()

        # buy="event": the shop handles Buy itself; no link opens.
        await page.evaluate("document.querySelector('livecart-player').setAttribute('buy', 'event')")
        await page.wait_for_function("window.shopEvents.filter((e) => e.type === 'ready').length === 2", timeout=15_000)
        frame = _watch_frame(page, "buy=event")
        await frame.evaluate("window.addEventListener('click', (e) => { window.prevented = e.defaultPrevented; })")
        buy = frame.locator(".card[data-id='embed-mug'] .buy")
        await buy.wait_for(state="visible", timeout=5_000)  # from the snapshot a joiner gets
        pages = len(context.pages)
        await buy.click()
        await page.wait_for_function("window.shopEvents.filter((e) => e.type === 'buy').length === 2", timeout=5_000)
        assert await frame.evaluate("window.prevented") is True
        assert len(context.pages) == pages
        await _host(http, embed_server, "/embed-mug/hide")

        # A stream nobody publishes: `offline`.
        await page.evaluate("document.querySelector('livecart-player').setAttribute('stream', 'demo2')")
        await page.wait_for_function("window.shopEvents.some((e) => e.type === 'offline')", timeout=10_000)

        # The unlisted shop: Chromium refuses the frame (the server's frame-ancestors), no events.
        other = await context.new_page()
        async with other.expect_console_message(
            lambda message: "frame-ancestors" in message.text, timeout=10_000
        ) as refusal:
            await other.goto(f"{shop.unlisted}/")
        assert shop.origin in (await refusal.value).text
        assert await other.evaluate("window.shopEvents") == []
    finally:
        await http.close()
        await context.close()
