"""The conversation in Chromium (issue 14): two viewers' pages and the host console against a real
server with a live publisher. A comment typed on one page shows over the video on both, taps on
the like button move the count on both, and the host deletes the comment and bans its author."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, wait_until

PLAYING = "document.getElementById('status').dataset.state === 'playing'"
# The comment with this text: on screen, over the lower half of the video picture.
OVER_VIDEO = """(text) => {
  const li = [...document.querySelectorAll('#comments .comment')].find((c) => c.textContent.includes(text));
  if (!li) return false;
  const c = li.getBoundingClientRect();
  const v = document.getElementById('video').getBoundingClientRect();
  return getComputedStyle(li).visibility === 'visible' && c.height > 0
    && c.left >= v.left && c.right <= v.right && c.top >= v.top + v.height / 2 && c.bottom <= v.bottom;
}"""
SHOWS = "(text) => [...document.querySelectorAll('#comments .comment')].some((c) => c.textContent.includes(text))"
GONE = f"(text) => !({SHOWS})(text)"
LIKES = "(n) => document.getElementById('likes').textContent === String(n)"


async def _viewer(browser: Any, server: Server) -> Any:
    ctx = await browser.new_context(viewport={"width": 960, "height": 640})
    page = await ctx.new_page()
    await page.goto(f"{server.base}/watch/live")
    await page.wait_for_function(PLAYING, timeout=20000)
    return page


async def _say(page: Any, text: str) -> None:
    await page.fill("#comment-text", text)
    await page.press("#comment-text", "Enter")


PINNED = """(text) => { const p = document.getElementById("pinned");
  return !p.hidden && p.querySelector(".pinned-text")?.textContent === text; }"""


async def test_viewers_comment_and_like_and_the_host_deletes_and_bans(
    browser: Any, web_server: Server, artifacts: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(web_server.base, "live", PUBLISH_KEY, width=640, height=360, audio=False)
        await publisher.start(http)
        try:
            ann, bo = await _viewer(browser, web_server), await _viewer(browser, web_server)

            # A viewer types a comment and sees it over the video; the other page sees it too.
            question = "Is the scarf real silk?"
            await _say(ann, question)
            for page in (ann, bo):
                await page.wait_for_function(OVER_VIDEO, arg=question, timeout=10000)
            assert await ann.locator("#comments .comment.mine").count() == 1
            assert await bo.locator("#comments .comment.mine").count() == 0

            # Tapping like moves the counter on both pages, by exactly the taps.
            for _ in range(3):
                await ann.click("#like")
            assert await ann.locator("#hearts .heart").count() >= 1  # hearts float up from the button
            for page in (ann, bo):
                await page.wait_for_function(LIKES, arg=3, timeout=10000)
            for _ in range(2):
                await bo.click("#like")
            for page in (ann, bo):
                await page.wait_for_function(LIKES, arg=5, timeout=10000)
            # The live viewer count.
            await bo.wait_for_function("document.getElementById('viewers').textContent === '2'", timeout=10000)
            await ann.screenshot(path=str(artifacts / "talk-viewer.png"))

            # The host console lists the comment; deleting it removes it from both viewers' pages.
            host = await browser.new_page(viewport={"width": 1100, "height": 900})
            await host.goto(f"{web_server.base}/host/live")
            await host.fill("#key", PUBLISH_KEY)
            await host.dispatch_event("#key", "change")
            row = host.locator("#comment-feed li", has_text=question)
            await row.wait_for(timeout=10000)
            await host.wait_for_function("document.getElementById('host-likes').textContent === '5'", timeout=10000)
            spam = "cheap scarves at my shop"
            await _say(bo, spam)
            await host.locator("#comment-feed li", has_text=spam).wait_for(timeout=10000)

            # The session's numbers on the console: its chart has this minute's comments and likes
            # as the stats API counts them (2 comments, 5 likes: polled every 5 s).
            chart_sum = """(series) => [...document.querySelectorAll(`#stats-chart rect[data-series=${series}]`)]
                .reduce((sum, bar) => sum + Number(bar.dataset.value), 0)"""
            await host.wait_for_function(f"({chart_sum})('comments') === 2 && ({chart_sum})('likes') === 5",
                                         timeout=15000)  # fmt: skip
            async with http.get(f"{web_server.base}/api/streams/live/stats",
                                headers={"Authorization": f"Bearer {PUBLISH_KEY}"}) as res:  # fmt: skip
                stats = await res.json()
            assert (stats["comments"], stats["likes"]) == (2, 5), stats
            summary = await host.text_content("#stats-summary")
            assert summary is not None and "2 comments" in summary and "5 likes" in summary, summary
            assert await host.locator("#stats-chart polyline.line-viewers").count() == 1
            await host.screenshot(path=str(artifacts / "talk-host-console.png"))
            # Pinning the question shows it above the comments on both pages; deleting it unpins it.
            await row.locator("button.pin").click()
            for page in (ann, bo):
                await page.wait_for_function(PINNED, arg=question, timeout=10000)
            await host.locator("#comment-feed li.pinned", has_text=question).wait_for(timeout=10000)
            await ann.screenshot(path=str(artifacts / "talk-viewer-pinned.png"))
            await row.locator("button.delete").click()
            for page in (ann, bo):
                await page.wait_for_function(GONE, arg=question, timeout=10000)
                await page.wait_for_function("document.getElementById('pinned').hidden", timeout=10000)
            await row.wait_for(state="detached", timeout=10000)

            # Banning the spammer from its row: its next comment is refused, and it is told why.
            await host.locator("#comment-feed li", has_text=spam).locator("button.ban").click()
            await host.locator("#comment-feed li.banned", has_text=spam).wait_for(timeout=10000)
            await _say(bo, "let me back in")
            await bo.wait_for_function(
                "document.getElementById('talk-error').textContent.includes('banned')", timeout=5000
            )
            assert not await bo.evaluate(SHOWS, "let me back in")
            await host.screenshot(path=str(artifacts / "talk-host-banned.png"))
            for page in (ann, bo, host):
                await page.context.close()
        finally:
            await publisher.stop(http)


async def test_orders_show_as_social_proof_and_count_the_stock_down_to_sold_out(
    browser: Any, web_server: Server, artifacts: Path
) -> None:
    host = {"Authorization": f"Bearer {PUBLISH_KEY}"}
    card = {"id": "scarf", "title": "Silk scarf", "price": "49.00", "currency": "EUR",
            "image_url": "/static/product.svg", "buy_url": "https://shop.example/scarf", "stock": 2}  # fmt: skip
    base = f"{web_server.base}/api/streams/live"
    async with aiohttp.ClientSession(headers=host) as http:
        publisher = WhipPublisher(web_server.base, "live", PUBLISH_KEY, width=640, height=360, audio=False)
        await publisher.start(http)
        try:
            page = await _viewer(browser, web_server)
            async with http.post(f"{base}/cards", json=card) as res:
                assert res.status == 200, await res.text()
            async with http.post(f"{base}/cards/scarf/show") as res:
                assert res.status == 200
            stock = page.locator(".card[data-id='scarf'] .card-stock")
            await stock.filter(has_text="Only 2 left").wait_for(timeout=10000)

            # The host console: its preview is the watch page (video and card as viewers see them),
            # and orders are listed as they come in.
            console = await browser.new_page(viewport={"width": 1100, "height": 1400})
            await console.goto(f"{web_server.base}/host/live")
            await console.fill("#key", PUBLISH_KEY)
            await console.dispatch_event("#key", "change")
            await console.wait_for_function("document.getElementById('feed-state').textContent === 'live'",
                                            timeout=10000)  # fmt: skip
            preview = next(f for f in console.frames if "/watch/live" in f.url)
            await preview.wait_for_function("document.getElementById('video').videoHeight === 240", timeout=15000)
            await preview.locator(".card[data-id='scarf']").wait_for(state="visible", timeout=10000)

            async with http.post(f"{base}/orders", json={"card_id": "scarf", "buyer": "Ann"}) as res:
                assert res.status == 200, await res.text()
            await page.wait_for_function(SHOWS, arg="Ann just bought Silk scarf", timeout=10000)
            await stock.filter(has_text="Only 1 left · 1 sold").wait_for(timeout=10000)
            ordered = console.locator("#order-feed li", has_text="Ann bought 1 × Silk scarf · 1 left")
            await ordered.wait_for(timeout=10000)
            await console.screenshot(path=str(artifacts / "orders-host-console.png"))
            await console.close()
            await page.screenshot(path=str(artifacts / "orders-viewer.png"))

            # Buy opens the shop (served here by the test) and counts in the shop's analytics.
            await page.context.route("https://shop.example/**", lambda route: route.fulfill(body="the shop"))
            async with page.context.expect_page() as shop_page:
                await page.click(".card[data-id='scarf'] .buy")
            await (await shop_page.value).close()

            async def clicked() -> bool:
                async with http.get(f"{base}/stats") as res:
                    cards = (await res.json())["cards"]
                return any(c["id"] == "scarf" and c["clicks"] == 1 and c["impressions"] >= 1 for c in cards)

            await wait_until(clicked, 10)
            async with http.post(f"{base}/orders", json={"card_id": "scarf", "buyer": "Bo"}) as res:
                assert res.status == 200, await res.text()
            await stock.filter(has_text="Sold out · 2 sold").wait_for(timeout=10000)
            assert await page.locator(".card[data-id='scarf'] .buy").count() == 0  # no Buy when sold out
            await page.screenshot(path=str(artifacts / "orders-sold-out.png"))
            await page.context.close()
        finally:
            await publisher.stop(http)
