"""The edge's HLS relay against a real (loopback) origin: one upstream request per distinct
request in flight, cached answers, a departed player does not cancel the others' request, and
an origin that does not answer is a 502 with the reason, with nothing left running; and the
conversation API relayed to the origin (relay.cluster.origin_proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from relay.cluster.hls_relay import HlsRelay, OriginUnavailable
from relay.cluster.origin_proxy import ask_origin
from tests.local_http import free_port, serving


class Origin:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(request.path_qs)
        if "_HLS_msn" in request.query:  # a blocking reload: held until the part exists
            self.held.set()
            await self.release.wait()
            return web.Response(body=b"#EXTM3U\n", content_type="application/vnd.apple.mpegurl",
                                headers={"Cache-Control": "max-age=6"})  # fmt: skip
        if request.path.endswith(".m4s"):
            return web.Response(body=b"part", content_type="video/iso.segment",
                                headers={"Cache-Control": "max-age=86400, immutable"})  # fmt: skip
        if request.path.endswith("private.m3u8"):
            return web.Response(body=b"#EXTM3U\n", headers={"Cache-Control": "private, max-age=1"})
        return web.Response(status=404, text="unknown stream 'x'", headers={"Cache-Control": "no-store"})


@pytest.fixture
async def origin() -> AsyncIterator[tuple[Origin, str]]:
    state = Origin()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.handle)
    async with serving(app) as base:
        try:
            yield state, base
        finally:
            state.release.set()  # held requests end before the server does


async def test_concurrent_blocking_reloads_are_one_upstream_request_and_then_cached(origin: tuple[Origin, str]) -> None:
    state, base = origin
    async with aiohttp.ClientSession() as http:
        relay = HlsRelay(http)

        async def where() -> str:
            return base

        path = "/hls/s/720p/index.m3u8?_HLS_msn=4&_HLS_part=1"
        waiters = [asyncio.create_task(relay.get(where, path)) for _ in range(50)]
        await asyncio.wait_for(state.held.wait(), 5)  # the one upstream request is in flight
        waiters[0].cancel()  # a player that leaves does not cancel the others' request
        state.release.set()
        answers = await asyncio.gather(*waiters[1:])
        assert {a.body for a in answers} == {b"#EXTM3U\n"}
        assert (await relay.get(where, path)).status == 200  # from the cache
        assert state.asked == [path]

        part = "/hls/s/720p/p4-1.m4s"
        assert (await relay.get(where, part)).body == b"part"
        assert (await relay.get(where, part)).body == b"part"
        private = "/hls/s/720p/private.m3u8?token=abc"
        await relay.get(where, private)
        await relay.get(where, private)  # private: relayed again, never kept
        missing = "/hls/x/index.m3u8"
        assert (await relay.get(where, missing)).status == 404
        assert state.asked == [path, part, private, private, missing]
        assert relay.counters()["upstream_requests"] == 5 and relay.counters()["cache_hits"] == 2
        await relay.close()


async def test_an_origin_that_does_not_answer_is_a_502_with_the_reason_and_leaves_nothing_running() -> None:
    port = free_port()  # nobody listens on it

    async def where() -> str:
        return f"http://127.0.0.1:{port}"

    before = len(asyncio.all_tasks())
    async with aiohttp.ClientSession() as http:
        relay = HlsRelay(http)
        results = await asyncio.gather(*(relay.get(where, "/hls/s/index.m3u8") for _ in range(5)),
                                       return_exceptions=True)  # fmt: skip
        assert all(isinstance(r, OriginUnavailable) for r in results), results
        err = results[0]
        assert isinstance(err, OriginUnavailable) and err.status == 502
        assert "origin did not answer" in str(err) and "\n" not in str(err)
        assert relay.counters()["upstream_failures"] == 1  # one request for the five
        await relay.close()
    assert len(asyncio.all_tasks()) == before


async def test_the_conversation_api_is_relayed_with_its_credentials_and_the_origins_answer() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers.get("Authorization"), await request.read()))
        return web.Response(status=429, text="slow down", headers={"Retry-After": "3", "X-Internal": "no"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with serving(app) as base:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer viewer-token", "Content-Type": "application/json", "Cookie": "x"}
            answer = await ask_origin(http, base, "POST", "/api/streams/s/comments?token=t", headers, b'{"text":"hi"}')
            assert seen == [("/api/streams/s/comments?token=t", "Bearer viewer-token", b'{"text":"hi"}')]
            assert (answer.status, answer.body, answer.headers.get("Retry-After")) == (429, b"slow down", "3")
            assert "X-Internal" not in answer.headers
    async with aiohttp.ClientSession() as http:
        with pytest.raises(OriginUnavailable) as gone:
            await ask_origin(http, f"http://127.0.0.1:{free_port()}", "POST", "/api/streams/s/likes", {}, b"{}")
    assert gone.value.status == 502
