"""Viewers talk back: comments and likes over real data channels, the host's feed, moderation, JWT."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import Server, start_server, stop_server, write_config
from tests.e2e.helpers import viewer_offer

KEY = "talk-publish-key-0123456789"
SECRET = "talk-viewer-secret-0123456789-abcdefgh"
VIEWERS = 50


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def talk_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("talk")
    extra = (
        f'[streams.talk]\npublish_key = "{KEY}"\nmax_viewers = 60\nchat_words = ["scam"]\n'
        f'[streams.vip]\npublish_key = "{KEY}"\nviewer_secret = "{SECRET}"\nchat_anonymous = false\n'
    )
    config = write_config(tmp / "livecart.toml", extra)
    config.write_text(config.read_text().replace("max_viewers_per_stream = 12", "max_viewers_per_stream = 60"))
    server = start_server(["--config", str(config), "--loop", request.param], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    log = server.log()
    assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]


class HostFeed:
    """The host console's view: every event of ``/comments/events``, with its arrival time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, object]]] = []
        self.changed = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, url: str, ready: asyncio.Event) -> None:
        async with http.get(url, headers={"Authorization": f"Bearer {KEY}"}) as res:
            assert res.status == 200
            ready.set()
            async for line in res.content:
                if line.startswith(b"data: "):
                    self.events.append((time.monotonic(), json.loads(line[6:])))
                    self.changed.set()

    def comments(self) -> list[dict[str, object]]:
        return [e for _, e in self.events if e["type"] == "comment"]

    async def wait(self, check: object, timeout: float) -> None:
        assert callable(check)
        async with asyncio.timeout(timeout):
            while not check():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def host(talk_server: Server) -> AsyncIterator[HostFeed]:
    feed = HostFeed()
    ready = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(feed.run(http, f"{talk_server.base}/api/streams/talk/comments/events", ready))
        await asyncio.wait_for(ready.wait(), 10)
        yield feed
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _messages(viewer: WhepViewer, kind: str) -> list[tuple[float, dict[str, object]]]:
    out = []
    for at, text in zip(viewer.record.message_times, viewer.record.messages, strict=True):
        message = json.loads(text)
        if message["type"] == kind:
            out.append((at, message))
        elif kind == "comment" and message["type"] == "comments":  # the display stream, batched
            out.extend((at, item) for item in message["comments"])
    return out


async def _open(viewers: list[WhepViewer], http: aiohttp.ClientSession) -> None:
    for viewer in viewers:
        await viewer.start(http)
    await asyncio.gather(*(v.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 20) for v in viewers))


async def test_fifty_viewers_comment_and_like_the_host_gets_every_comment_viewers_a_readable_stream(
    talk_server: Server, host: HostFeed
) -> None:
    async with aiohttp.ClientSession() as http:
        viewers = [WhepViewer(talk_server.base, "talk", read_pattern=False, audio=False) for _ in range(VIEWERS)]
        try:
            await _open(viewers, http)
            sent_at: dict[str, float] = {}
            taps = 0
            for n, viewer in enumerate(viewers):
                assert viewer.channel is not None
                if n % 2 == 0:  # half of them comment, twice each (the per-viewer burst)
                    for k in range(2):
                        text = f"viewer {n} says {k}"
                        sent_at[text] = time.monotonic()
                        viewer.channel.send(json.dumps({"type": "comment", "text": text}))
                count = 1 + n % 7  # everyone likes, in batches as a player sends them
                taps += count
                viewer.channel.send(json.dumps({"type": "like", "count": count}))
            await host.wait(lambda: len(host.comments()) == len(sent_at), 15)
            arrived = {str(c["text"]): at for at, c in host.events if c["type"] == "comment"}
            assert set(arrived) == set(sent_at)
            # Each viewer's comments reach the host in the order it sent them.
            ids = {str(c["text"]): int(str(c["id"])) for c in host.comments()}
            assert all(ids[f"viewer {n} says 0"] < ids[f"viewer {n} says 1"] for n in range(0, VIEWERS, 2))
            latencies = sorted(arrived[t] - sent_at[t] for t in sent_at)
            p99 = latencies[int(0.99 * (len(latencies) - 1))]
            print(
                f"host receipt of {len(latencies)} comments: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms"
            )
            # Like totals are exact: every viewer ends up told the sum of all taps.
            await asyncio.gather(
                *(v.wait_for(lambda r: any(f'"total":{taps},' in m for m in r.messages), 10) for v in viewers)
            )
            # Every author got its own comments echoed at once; every viewer's display stays readable
            # (the display goes out every half second, in one message per viewer).
            def sees_display(v: WhepViewer) -> Any:
                return lambda r: any(not m["mine"] for _, m in _messages(v, "comment"))

            await asyncio.gather(*(v.wait_for(sees_display(v), 10) for v in viewers))
            for n, viewer in enumerate(viewers):
                mine = [m for _, m in _messages(viewer, "comment") if m["mine"]]
                assert len(mine) == (2 if n % 2 == 0 else 0)
                shown = [at for at, m in _messages(viewer, "comment") if not m["mine"]]
                assert shown, "viewers see the display stream"
                for at in shown:  # <= 10 per second (2 of slack for data-channel bunching)
                    assert sum(1 for u in shown if at <= u < at + 1.0) <= 10 + 2, "display over the cap"
            async with http.get(
                f"{talk_server.base}/api/streams/talk/comments", headers={"Authorization": f"Bearer {KEY}"}
            ) as res:
                stats = await res.json()
            assert stats["likes"]["total"] == taps and stats["accepted"] == len(sent_at)
        finally:
            for viewer in viewers:
                await viewer.stop(http)


async def test_moderation_filters_limits_deletes_and_bans(talk_server: Server, host: HostFeed) -> None:
    async with aiohttp.ClientSession() as http:
        alice, bob = (WhepViewer(talk_server.base, "talk", read_pattern=False, audio=False) for _ in range(2))
        try:
            await _open([alice, bob], http)
            assert alice.channel is not None
            alice.channel.send(json.dumps({"type": "comment", "text": "this is a SCAM"}))
            await alice.wait_for(lambda r: any('"error"' in m for m in r.messages), 5)
            assert "does not allow" in str(_messages(alice, "error")[-1][1]["reason"])
            for k in range(3):  # a burst of two, then one too many
                alice.channel.send(json.dumps({"type": "comment", "text": f"buy buy buy {k}"}))
            await alice.wait_for(lambda r: any("slow down" in m for m in r.messages), 5)
            assert _messages(alice, "error")[-1][1]["status"] == 429
            await host.wait(lambda: any(c["text"] == "buy buy buy 1" for c in host.comments()), 5)
            target = next(c for c in host.comments() if c["text"] == "buy buy buy 0")
            headers = {"Authorization": f"Bearer {KEY}"}
            async with http.delete(
                f"{talk_server.base}/api/streams/talk/comments/{target['id']}", headers=headers
            ) as res:
                assert res.status == 200
            for viewer in (alice, bob):  # gone for everyone
                await viewer.wait_for(
                    lambda r: any(f'"comment_removed","id":{target["id"]}' in m for m in r.messages), 5
                )
            async with http.get(f"{talk_server.base}/api/streams/talk/comments", headers=headers) as res:
                listed = await res.json()
            assert target["id"] not in [c["id"] for c in listed["comments"]]
            sub = next(c["sub"] for c in listed["comments"] if c["text"] == "buy buy buy 1")
            async with http.post(
                f"{talk_server.base}/api/streams/talk/moderation", json={"action": "ban", "sub": sub}, headers=headers
            ) as res:
                assert res.status == 200
            alice.channel.send(json.dumps({"type": "comment", "text": "let me back"}))
            await alice.wait_for(lambda r: any("banned" in m for m in r.messages), 5)
            assert _messages(alice, "error")[-1][1]["status"] == 403
        finally:
            for viewer in (alice, bob):
                await viewer.stop(http)


async def test_the_host_pins_a_comment_for_every_viewer_and_late_joiners_and_deleting_it_unpins(
    talk_server: Server, host: HostFeed
) -> None:
    api = f"{talk_server.base}/api/streams/talk"
    headers = {"Authorization": f"Bearer {KEY}"}

    def pinned(viewer: WhepViewer) -> object:
        """The comment this viewer was last told is pinned (None: unpinned; "never": no word)."""
        told = _messages(viewer, "comment_pinned")
        return told[-1][1]["comment"] if told else "never"

    async with aiohttp.ClientSession() as http:
        alice = WhepViewer(talk_server.base, "talk", read_pattern=False, audio=False)
        late: WhepViewer | None = None
        try:
            await _open([alice], http)
            async with http.post(f"{api}/comments", json={"text": "Free shipping until 9 pm!"}, headers=headers) as res:
                assert res.status in (200, 201), await res.text()
            await host.wait(lambda: any(c["text"] == "Free shipping until 9 pm!" for c in host.comments()), 5)
            comment_id = next(c["id"] for c in host.comments() if c["text"] == "Free shipping until 9 pm!")
            async with http.post(f"{api}/comments/{comment_id}/pin", headers={"Authorization": "Bearer nope"}) as res:
                assert res.status in (401, 403)
            async with http.post(f"{api}/comments/999999/pin", headers=headers) as res:
                assert res.status == 404 and "no recent comment" in await res.text()
            async with http.post(f"{api}/comments/{comment_id}/pin", headers=headers) as res:
                assert res.status == 200, await res.text()
            await alice.wait_for(lambda r: isinstance(pinned(alice), dict), 5)
            told = pinned(alice)
            assert isinstance(told, dict) and (told["id"], told["text"]) == (comment_id, "Free shipping until 9 pm!")
            async with http.get(f"{api}/comments", headers=headers) as res:
                assert (await res.json())["pinned"] == comment_id

            late = WhepViewer(talk_server.base, "talk", read_pattern=False, audio=False)
            await _open([late], http)  # joins while it is pinned: told on open
            await late.wait_for(lambda r: isinstance(pinned(late), dict), 5)
            async with http.delete(f"{api}/comments/{comment_id + 1}/pin", headers=headers) as res:
                assert res.status == 404 and "is not pinned" in await res.text()

            async with http.delete(f"{api}/comments/{comment_id}", headers=headers) as res:
                assert res.status == 200
            for viewer in (alice, late):  # deleted: unpinned for everyone
                await viewer.wait_for(lambda r, v=viewer: pinned(v) is None, 5)
            async with http.get(f"{api}/comments", headers=headers) as res:
                assert (await res.json())["pinned"] is None
        finally:
            for viewer in (alice, late):
                if viewer is not None:
                    await viewer.stop(http)


def _token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(
        {"aud": "vip", "exp": int(time.time()) + 600, "sub": "u-1", "name": "Ann"} | claims, secret, algorithm=algorithm
    )


async def test_jwt_viewers_post_under_their_name_and_bad_tokens_are_refused(
    talk_server: Server, tmp_path: Path
) -> None:
    offer = await viewer_offer()
    async with aiohttp.ClientSession() as http:

        async def whep(token: str | None) -> tuple[int, str]:
            headers = {"Content-Type": "application/sdp"} | ({"Authorization": f"Bearer {token}"} if token else {})
            async with http.post(f"{talk_server.base}/whep/vip", data=offer, headers=headers) as res:
                body = await res.text()
                if res.status == 201:
                    async with http.delete(f"{talk_server.base}{res.headers['Location']}"):
                        pass
                return res.status, body

        assert (await whep(_token({})))[0] == 201
        assert (await whep(None))[0] == 401
        for bad, word in (
            (_token({"exp": int(time.time()) - 60}), "expired"),
            (_token({"aud": "talk"}), "another stream"),
            (_token({}, secret="another-secret-0123456789-0123456789"), "not valid"),
            (jwt.encode({"aud": "vip", "exp": 2**31, "sub": "x"}, key=None, algorithm="none"), "not valid"),
            ("v1.2000000000.c2lnbmF0dXJl", "old-format"),
        ):
            status, body = await whep(bad)
            assert status == 403 and word in body, (status, body)
        headers = {"Authorization": f"Bearer {_token({'name': 'Ann B.'})}"}
        async with http.post(
            f"{talk_server.base}/api/streams/vip/comments", json={"text": "hello"}, headers=headers
        ) as res:
            assert res.status == 201
            assert (await res.json())["name"] == "Ann B."
        async with http.post(f"{talk_server.base}/api/streams/vip/comments", json={"text": "hello"}) as res:
            assert res.status == 401  # no token on a protected stream
