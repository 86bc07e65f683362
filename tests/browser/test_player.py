"""The player, publisher and host pages in real Chromium (issue 5)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from tests.browser.conftest import KEY
from tests.e2e.conftest import Server

FRAMES = "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
DECODED = """async () => {
  let n = 0;
  (await window.livecartPlayer.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
  });
  return n;
}"""
# The card is on screen and its entry animation done (it may not exist yet: cards wait for their frame).
CARD_SETTLED = (
    "(() => { const c = document.querySelector('.card');"
    " return c !== null && getComputedStyle(c).opacity === '1'; })()"
)


async def _publish(browser: Any, server: Server) -> Any:
    page = await browser.new_page()
    await page.goto(f"{server.base}/publish/demo2")
    await page.fill("#key", KEY)
    await page.click("#start")
    await page.wait_for_function("document.getElementById('state').textContent === 'connected'", timeout=15000)
    return page


async def _watch(browser: Any, server: Server, **context: Any) -> Any:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/watch/demo2")
    await page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=15000)
    return page


async def test_publish_watch_switch_cards_offline_and_back(browser: Any, web_server: Server, artifacts: Path) -> None:
    publisher = await _publish(browser, web_server)
    watcher = await _watch(browser, web_server)

    # 1. It plays, and framesDecoded (getStats) keeps growing for 5 s.
    samples = [await watcher.evaluate(DECODED)]
    began = time.monotonic()
    while time.monotonic() - began < 5:
        await watcher.wait_for_function(f"async () => (await ({DECODED})()) > {samples[-1]}", timeout=2000)
        samples.append(await watcher.evaluate(DECODED))
    assert samples == sorted(samples) and samples[-1] > samples[0] + 50, samples

    # 2. The menu moves it to 240p, and back to adaptive.
    await watcher.wait_for_function("document.getElementById('rendition').options.length > 2", timeout=10000)
    await watcher.select_option("#rendition", "240p")
    await watcher.wait_for_function("document.getElementById('video').videoHeight === 240", timeout=5000)
    await watcher.select_option("#rendition", "auto")
    await watcher.wait_for_function("document.getElementById('current').dataset.mode === 'auto'", timeout=5000)
    playing = await watcher.evaluate(FRAMES)
    await watcher.wait_for_function(f"{FRAMES} > {playing} + 20", timeout=10000)

    # 3. The host console creates and shows a product; the overlay shows it within 2 s.
    host = await browser.new_page()
    await host.goto(f"{web_server.base}/host/demo2")
    await host.fill("#key", KEY)
    await host.dispatch_event("#key", "change")
    for name, value in {
        "id": "mug-1",
        "title": "Stoneware mug",
        "price": "12.50",
        "currency": "EUR",
        "image_url": "/static/product.svg",
        "buy_url": "https://shop.example/mug",
        "badge": "-20%",
    }.items():
        await host.fill(f"#card-form [name={name}]", value)
    await host.click("#card-form button[type=submit]")
    await host.click("#catalogue li[data-id='mug-1'] button.show", timeout=5000)
    card = watcher.locator(".card[data-id='mug-1']")
    await card.wait_for(state="visible", timeout=2000)
    assert "Stoneware mug" in await card.inner_text()
    assert "12.50" in await card.inner_text()

    # 5. Screenshots with the card on screen, desktop and phone.
    await watcher.wait_for_function(CARD_SETTLED, timeout=3000)
    await watcher.screenshot(path=str(artifacts / "watch-desktop.png"))
    phone = await _watch(browser, web_server, viewport={"width": 390, "height": 844}, is_mobile=True)
    # A page opened after the show sees the card at once (snapshot).
    await phone.locator(".card[data-id='mug-1']").wait_for(state="visible", timeout=2000)
    await phone.wait_for_function(CARD_SETTLED, timeout=3000)
    await phone.screenshot(path=str(artifacts / "watch-phone.png"))
    shutil.copy(artifacts / "watch-desktop.png", artifacts / "screenshot.png")

    await host.click("#on-screen li[data-id='mug-1'] button.hide")
    await card.wait_for(state="detached", timeout=3000)

    # 4. Stopping the publisher shows the offline state; publishing again resumes playback.
    await publisher.click("#stop")
    await watcher.wait_for_function("document.getElementById('status').dataset.state === 'offline'", timeout=10000)
    await publisher.click("#start")
    await watcher.wait_for_function("document.getElementById('status').dataset.state === 'playing'", timeout=15000)
    resumed = await watcher.evaluate(FRAMES)
    await watcher.wait_for_function(f"{FRAMES} > {resumed} + 20", timeout=10000)
