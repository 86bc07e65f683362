"""Third-party WHEP players from npm, on a page of another origin, in Chromium (issue 20).

medooze's whip-whep 1.2 (``WHEPClient``) trickles its candidates with PATCH
(``application/trickle-ice-sdpfrag``, so a CORS preflight first) and, on stop, closes its peer
connection before it sends DELETE. Its built module is served, unchanged, from
tests/interop/node_modules by a small HTTP server on a second port: another origin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks.peers import WhipPublisher
from tests.browser.conftest import KEY
from tests.e2e.conftest import Server
from tests.e2e.helpers import INTEROP, node_with
from tests.local_http import serving

PAGES = Path(__file__).resolve().parent / "pages"
DECODED = """async () => {
  let n = 0;
  if (!window.pc) return 0;
  (await window.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
  });
  return n;
}"""


@pytest.fixture
async def player_origin() -> AsyncIterator[str]:
    """An HTTP server on another port serving the player page and the npm package's files."""
    node_with("whip-whep")
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGES / "whip_whep_player.html")

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)  # so the browser's favicon request is no console error

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_static("/whip-whep", INTEROP / "node_modules" / "whip-whep")
    async with serving(app) as base:
        yield base


async def test_medooze_whip_whep_plays_from_another_origin_with_trickle_and_delete(
    browser: Any, web_server: Server, player_origin: str
) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(web_server.base, "demo2", KEY, h264=True)
        await publisher.start(http)
        page = await browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        statuses: dict[str, list[int]] = {"PATCH": [], "DELETE": []}
        patched = asyncio.Event()
        deleted = asyncio.Event()

        def on_response(response: Any) -> None:
            method = response.request.method
            if method in statuses and "/whep/demo2/" in response.url:
                statuses[method].append(response.status)
                (patched if method == "PATCH" else deleted).set()

        page.on("response", on_response)
        try:
            await page.goto(f"{player_origin}/")
            assert player_origin != web_server.base  # another origin: CORS applies
            await page.evaluate("url => window.play(url)", f"{web_server.base}/whep/demo2")
            await page.wait_for_function(f"async () => (await ({DECODED})()) > 30", timeout=20000)
            await page.wait_for_function("document.getElementById('video').currentTime > 0.5", timeout=10000)
            await asyncio.wait_for(patched.wait(), 10)
            decoded = await page.evaluate(DECODED)
            await page.evaluate("() => window.stop()")
            await asyncio.wait_for(deleted.wait(), 10)
        finally:
            await page.close()
            await publisher.stop(http)
    assert statuses["PATCH"] and set(statuses["PATCH"]) == {204}, statuses
    assert statuses["DELETE"] == [200], statuses
    assert not problems, problems
    print(f"whip-whep: {decoded} frames decoded, PATCH statuses {statuses['PATCH']}, DELETE {statuses['DELETE']}")
