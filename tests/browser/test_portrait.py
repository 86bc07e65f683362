"""An upright phone stream on an upright phone screen: the picture fills it at full height, with
the product card and the controls over it (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.browser.test_player import CARD_SETTLED
from tests.e2e.conftest import PUBLISH_KEY, Server

PHONE = {"width": 390, "height": 844}
CARD = {
    "id": "scarf-1",
    "title": "Silk scarf",
    "price": "39.00",
    "currency": "EUR",
    "image_url": "/static/product.svg",
    "buy_url": "https://shop.example/scarf",
    "badge": "new",
}
# Where the picture really is: the element's box, and the video scaled by its object-fit.
GEOMETRY = """() => {
  const v = document.getElementById('video');
  const box = v.getBoundingClientRect();
  const fit = getComputedStyle(v).objectFit;
  const scale = (fit === 'cover' ? Math.max : Math.min)(box.width / v.videoWidth, box.height / v.videoHeight);
  const card = document.querySelector('.card').getBoundingClientRect();
  const controls = document.querySelector('.controls').getBoundingClientRect();
  return {box: [box.x, box.y, box.width, box.height], video: [v.videoWidth, v.videoHeight], fit,
          picture: [v.videoWidth * scale, v.videoHeight * scale],
          card: [card.top, card.bottom], controls: [controls.top, controls.bottom]};
}"""


async def test_portrait_stream_fills_a_phone_screen_at_full_height(
    browser: Any, web_server: Server, artifacts: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(web_server.base, "live", PUBLISH_KEY, width=720, height=1280, h264=True)
        await publisher.start(http)
        auth = {"Authorization": f"Bearer {PUBLISH_KEY}"}
        try:
            async with http.post(f"{web_server.base}/api/streams/live/cards", json=CARD, headers=auth) as res:
                assert res.status in (200, 201), await res.text()
            async with http.post(f"{web_server.base}/api/streams/live/cards/scarf-1/show", headers=auth) as res:
                assert res.status == 200, await res.text()
            ctx = await browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=2)
            page = await ctx.new_page()
            await page.goto(f"{web_server.base}/watch/live")
            await page.wait_for_function(
                "document.getElementById('status').dataset.state === 'playing'"
                " && document.querySelector('.stage').dataset.orientation === 'portrait'",
                timeout=15000,
            )
            await page.wait_for_function(CARD_SETTLED)
            g = await page.evaluate(GEOMETRY)
            print(g)
            width, height = PHONE["width"], PHONE["height"]
            vw, vh = g["video"]
            assert vh > vw and vh >= 854, g  # upright frames of an upright rung (auto starts on 480p)
            assert [round(x) for x in g["box"]] == [0, 0, width, height], g  # the element is the screen
            pw, ph = g["picture"]
            assert round(ph) == height and pw >= width, g  # the picture: full height, no bars at the sides
            # The card and the controls sit on the picture, inside the screen.
            assert 0 < g["card"][0] < g["card"][1] <= height, g
            assert round(g["controls"][1]) == height and g["controls"][0] > g["card"][1], g
            await page.screenshot(path=str(artifacts / "portrait-phone.png"))
            await ctx.close()
        finally:
            await publisher.stop(http)
