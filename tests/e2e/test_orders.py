"""Orders the shop reports (issue 14): the card's stock counts down and its sold count up for a
real viewer on its data channel, with a "just bought" notice; an order for more than is left, an
unknown card, a malformed body and a wrong key are refused with one-line reasons."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, start_server, stop_server, wait_until, write_config

SCARF = {"id": "scarf", "title": "Silk scarf", "price": "49.00", "currency": "EUR",
         "image_url": "/img/scarf.jpg", "buy_url": "https://shop.example/scarf", "stock": 3}  # fmt: skip
HOST = {"Authorization": f"Bearer {PUBLISH_KEY}"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("orders")
    # "shows": every go-live starts a new analytics session (no gap in which a publisher continues one).
    extra = f'[hls]\nenabled = false\n[streams.shows]\npublish_key = "{PUBLISH_KEY}"\nsession_gap_s = 0\n'
    server = start_server(["--config", str(write_config(tmp / "livecart.toml", extra))], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    log = server.log()
    assert "Traceback" not in log, log[-5000:]


def _messages(viewer: WhepViewer, kind: str) -> list[dict[str, Any]]:
    return [m for m in map(json.loads, viewer.record.messages) if m.get("type") == kind]


async def _order(http: aiohttp.ClientSession, base: str, body: object, headers: dict[str, str] = HOST) -> Any:
    async with http.post(f"{base}/api/streams/live/orders", json=body, headers=headers) as res:
        return res.status, (await res.json() if res.status == 200 else (await res.text()).strip())


async def test_orders_count_the_stock_down_for_viewers_until_it_is_sold_out(shop: Server) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(shop.base, "live", PUBLISH_KEY, width=320, height=240, audio=False)
        await publisher.start(http)
        viewer = WhepViewer(shop.base, "live", audio=False, read_pattern=False)
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 1, 20)
            async with http.post(f"{shop.base}/api/streams/live/cards", json=SCARF, headers=HOST) as res:
                assert res.status == 200, await res.text()
            async with http.post(f"{shop.base}/api/streams/live/cards/scarf/show", headers=HOST) as res:
                assert res.status == 200

            status, event = await _order(http, shop.base, {"card_id": "scarf", "buyer": "Ann"})
            assert status == 200, event
            assert (event["action"], event["card"]["stock"], event["card"]["sold"]) == ("update", 2, 1)
            await viewer.wait_for(lambda r: any(m["card"].get("sold") == 1 for m in _messages(viewer, "card")), 10)
            await viewer.wait_for(lambda r: bool(_messages(viewer, "order")), 10)
            notice = _messages(viewer, "order")[0]
            assert (notice["buyer"], notice["title"], notice["quantity"]) == ("Ann", "Silk scarf", 1)
            assert notice["stock"] == 2

            status, event = await _order(http, shop.base, {"card_id": "scarf", "quantity": 2})
            assert status == 200 and (event["card"]["stock"], event["card"]["sold"]) == (0, 3)
            await viewer.wait_for(lambda r: any(m["card"].get("stock") == 0 for m in _messages(viewer, "card")), 10)

            # Sold out: the next order changes nothing and says why; so do the other refusals.
            assert await _order(http, shop.base, {"card_id": "scarf"}) == (
                409, "card 'scarf': an order of 1, but it is sold out"
            )  # fmt: skip
            assert (await _order(http, shop.base, {"card_id": "hat"}))[0] == 404
            status, reason = await _order(http, shop.base, {"card_id": "scarf", "quantity": "two"})
            assert status == 422 and "quantity" in reason
            assert (await _order(http, shop.base, {"card_id": "scarf"}, {"Authorization": "Bearer wrong"}))[0] == 403
            async with http.get(f"{shop.base}/api/streams/live/cards") as res:
                card = next(c for c in (await res.json())["catalogue"] if c["id"] == "scarf")
            assert (card["stock"], card["sold"]) == (0, 3)

            # The shop's analytics: the viewer saw the card and clicked Buy on its data channel.
            assert viewer.channel is not None
            viewer.channel.send(json.dumps({"type": "click", "card": "scarf"}))

            async def stats() -> dict[str, Any]:
                async with http.get(f"{shop.base}/api/streams/live/stats", headers=HOST) as res:
                    assert res.status == 200, await res.text()
                    data: dict[str, Any] = await res.json()
                    return data

            async def clicked() -> bool:
                report = await stats()  # and watch time counted: tenths of a second, from the go-live
                return report["viewers"]["watch_time_s"] > 0 and any(c["clicks"] == 1 for c in report["cards"])

            await wait_until(clicked, 10)
            report = await stats()
            scarf = next(c for c in report["cards"] if c["id"] == "scarf")
            assert (scarf["impressions"], scarf["clicks"], scarf["clickers"], scarf["ctr"]) == (1, 1, 1, 1.0)
            assert report["orders"] == 3 and report["viewers"]["now"] == 1 and report["viewers"]["peak"] >= 1
            assert report["viewers"]["watch_time_s"] > 0 and sum(m["orders"] for m in report["timeline"]) == 3
            async with http.get(f"{shop.base}/api/streams/live/stats") as res:
                assert res.status == 401  # the host's key only
        finally:
            await viewer.stop(http)
            await publisher.stop(http)


async def test_the_stats_start_over_each_session_and_keep_the_last_ones(shop: Server) -> None:
    """A publisher goes live, a comment and likes are counted, it stops; the next go-live is
    session 2 (this stream's gap is 0): it counts from zero, with the viewer who waited as its
    first join, and session 1's numbers are under ``previous``."""
    stats_url = f"{shop.base}/api/streams/shows/stats"

    async def stats(http: aiohttp.ClientSession) -> Any:
        async with http.get(stats_url, headers=HOST) as res:
            assert res.status == 200, await res.text()
            return await res.json()

    async with aiohttp.ClientSession() as http:
        assert (await stats(http))["session"] == 0  # never live yet
        first = WhipPublisher(shop.base, "shows", PUBLISH_KEY, width=320, height=240, audio=False)
        await first.start(http)
        viewer = WhepViewer(shop.base, "shows", audio=False, read_pattern=False)
        second: WhipPublisher | None = None
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 1, 20)
            async with http.post(f"{shop.base}/api/streams/shows/comments", json={"text": "Welcome!"},
                                 headers=HOST) as res:  # fmt: skip
                assert res.status in (200, 201), await res.text()
            async with http.post(f"{shop.base}/api/streams/shows/likes", json={"count": 4}, headers=HOST) as res:
                assert res.status == 204, await res.text()

            async def counted() -> bool:
                now = await stats(http)
                return bool(now["session"] == 1 and now["comments"] == 1 and now["likes"] == 4)

            await wait_until(counted, 10)
            await first.stop(http)
            await wait_until(lambda: _is(stats(http), live=False), 10)
            second = WhipPublisher(shop.base, "shows", PUBLISH_KEY, width=320, height=240, audio=False)
            await second.start(http)
            await wait_until(lambda: _is(stats(http), session=2), 20)
            now = await stats(http)
            assert (now["comments"], now["likes"], now["live"]) == (0, 0, True), now
            assert (now["viewers"]["now"], now["viewers"]["joins"]) == (1, 1), now["viewers"]
            (ended,) = now["previous"]
            assert (ended["session"], ended["comments"], ended["likes"]) == (1, 1, 4), ended
            assert ended["viewers"]["joins"] == 1 and ended["live"] is False
        finally:
            await viewer.stop(http)
            for pub in (first, second):
                if pub is not None:
                    await pub.stop(http, delete=False)


async def _is(report: Any, **fields: object) -> bool:
    got = await report
    return all(got[k] == v for k, v in fields.items())
