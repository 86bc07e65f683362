"""The shop's comment review endpoint: obeyed when it answers, its deadline kept when it hangs,
and its fail mode applied when it is down (shown unreviewed, or refused with 503)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import Server, start_server, stop_server, write_config

KEY = "review-publish-key-0123456789"
HOST = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Shop:
    """A stand-in for the shop's moderation service on 127.0.0.1."""

    url: str = ""
    seen: list[dict[str, object]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def review(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.seen.append(payload)
        if "refund" in str(payload["text"]):
            return web.json_response({"allow": False, "reason": "ask the shop about refunds, not the chat"})
        return web.Response(status=204)

    async def hang(self, request: web.Request) -> web.Response:
        self.seen.append(await request.json())
        async with asyncio.timeout(30):  # far past the deadline; released when the test ends
            await self.release.wait()
        return web.Response(status=204)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    recorder = Shop()
    app = web.Application()
    app.router.add_post("/review", recorder.review)
    app.router.add_post("/hang", recorder.hang)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recorder
    recorder.release.set()
    await runner.cleanup()


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: a review endpoint that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(tmp_path: Path, shop: Shop) -> AsyncIterator[Server]:
    down = f"http://127.0.0.1:{_closed_port()}/review"
    streams = {
        "shop": f'chat_review = "{shop.url}/review"',
        "open": f'chat_review = "{down}"\nchat_review_fail_open = true',
        "closed": f'chat_review = "{down}"\nchat_review_fail_open = false',
        "late": f'chat_review = "{shop.url}/hang"\nchat_review_timeout_s = 0.2\nchat_review_fail_open = false',
    }
    extra = "".join(f'[streams.{name}]\npublish_key = "{KEY}"\n{rest}\n' for name, rest in streams.items())
    config = write_config(tmp_path / "livecart.toml", extra)
    srv = start_server(["--config", str(config)], tmp_path / "server.log")
    yield srv
    assert stop_server(srv) == 0
    log = srv.log()
    assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]


async def _post(http: aiohttp.ClientSession, server: Server, stream: str, text: str) -> tuple[int, str, float]:
    began = time.monotonic()
    async with http.post(f"{server.base}/api/streams/{stream}/comments", json={"text": text}) as res:
        return res.status, await res.text(), time.monotonic() - began


async def _texts(http: aiohttp.ClientSession, server: Server, stream: str) -> list[str]:
    async with http.get(f"{server.base}/api/streams/{stream}/comments", headers=HOST) as res:
        return [str(c["text"]) for c in (await res.json())["comments"]]


async def test_the_shops_review_is_obeyed_and_its_reason_reaches_the_viewer(server: Server, shop: Shop) -> None:
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _post(http, server, "shop", "is it silk?")
        assert status == 201 and json.loads(body)["text"] == "is it silk?"
        status, body, _ = await _post(http, server, "shop", "I want a refund")
        assert status == 422 and "ask the shop about refunds" in body
        assert await _texts(http, server, "shop") == ["is it silk?"]
    assert [p["text"] for p in shop.seen] == ["is it silk?", "I want a refund"]
    assert {"stream", "id", "sub", "name", "role", "text"} <= set(shop.seen[0])


async def test_a_review_that_is_down_shows_comments_when_failing_open_and_refuses_them_when_closed(
    server: Server,
) -> None:
    async with aiohttp.ClientSession() as http:
        for k in range(3):
            status, _, _ = await _post(http, server, "open", f"fail open {k}")
            assert status == 201
        assert await _texts(http, server, "open") == ["fail open 0", "fail open 1", "fail open 2"]

        status, body, _ = await _post(http, server, "closed", "fail closed")
        assert status == 503 and "cannot be reviewed right now" in body
        assert await _texts(http, server, "closed") == []

        # On the data channel the refusal comes back as an error message, the comment never shown.
        viewer = WhepViewer(server.base, "closed", read_pattern=False, audio=False)
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 20)
            assert viewer.channel is not None
            viewer.channel.send(json.dumps({"type": "comment", "text": "over the channel"}))
            await viewer.wait_for(lambda r: any('"error"' in m for m in r.messages), 10)
            error = next(json.loads(m) for m in viewer.record.messages if '"error"' in m)
            assert error["status"] == 503 and "cannot be reviewed" in error["reason"]
            assert not any('"comment"' in m for m in viewer.record.messages)
        finally:
            await viewer.stop(http)
        assert await _texts(http, server, "closed") == []
    # One line per stream when its review goes down, not one per comment.
    lines = [line for line in server.log().splitlines() if "comment review" in line and "failed" in line]
    assert len([line for line in lines if "talk open:" in line]) == 1, lines
    assert len([line for line in lines if "talk closed:" in line]) == 1, lines


async def test_a_review_that_hangs_is_cut_off_at_its_deadline(server: Server, shop: Shop) -> None:
    async with aiohttp.ClientSession() as http:
        status, body, took = await _post(http, server, "late", "anyone there?")
    assert [p["text"] for p in shop.seen] == ["anyone there?"]  # it was asked, and never answered
    assert status == 503 and "cannot be reviewed" in body
    assert took < 5.0, took  # the hook holds the request for 30 s; the 0.2 s deadline ended it
