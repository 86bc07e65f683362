"""A relay level, with real processes over loopback: Redis, an origin, a relay (an edge that
edges pull from) and an edge. The edge pulls from the relay, the relay from the origin, once
each; the edge's viewers decode the publisher's numbered frames, get the origin's cards with the
same seq and pts_ms, and their comments are the origin's conversation, answered back through
both levels."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import pytest
import pytest_asyncio

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.cluster_nodes import cluster_nodes
from tests.e2e.cluster_nodes import get_json as get
from tests.e2e.conftest import PUBLISH_KEY, Server, wait_until

TOKEN = "cluster-relay-token-0123456789"
SECRET = "vip-viewer-secret-0123456789abcdef"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    roles = {name: ["--role", name] for name in ("origin", "relay", "edge")}
    vip = f'[streams.vip]\npublish_key = "{PUBLISH_KEY}"\nviewer_secret = "{SECRET}"\n'
    with cluster_nodes(
        tmp_path_factory.mktemp("relay"), roles, token=TOKEN, config=vip, may_be_killed="relay"
    ) as servers:
        yield servers  # (the last test kills the relay)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def publisher(nodes: dict[str, Server]) -> Any:
    origin = nodes["origin"].base
    async with aiohttp.ClientSession() as http:
        pub = WhipPublisher(origin, "live", PUBLISH_KEY, width=640, height=360, audio=True, h264=True)
        await pub.start(http)

        async def ready() -> bool:  # live, and the directory knows every node and the stream's origin
            stream = await get(http, f"{origin}/api/streams/live")
            view = await get(http, f"{origin}/api/cluster")
            alive = {n["node_id"]: n for n in view["nodes"] if n["alive"]}
            everyone = set(alive) == {"origin", "relay", "edge"}
            return bool(stream["live"]) and everyone and alive["origin"]["streams"] == ["live"]

        await wait_until(ready, 30)
        yield pub
        await pub.stop(http)


def viewer_of(edge: Server) -> WhepViewer:
    viewer = WhepViewer(edge.base, "live", rendition="240p")
    viewer.url += "&via=test"  # watched where it is posted
    return viewer


async def test_an_edge_pulls_through_the_relay_and_its_viewers_get_frames_cards_and_answers(
    nodes: dict[str, Server], publisher: WhipPublisher
) -> None:
    origin, relay, edge = nodes["origin"].base, nodes["relay"].base, nodes["edge"].base
    host = {"Authorization": f"Bearer {PUBLISH_KEY}"}
    async with aiohttp.ClientSession() as http:
        viewers = [viewer_of(nodes["edge"]) for _ in range(3)]
        try:
            for viewer in viewers:
                await viewer.start(http)
            # Watching, with the data channel open (its snapshot arrived: frames may come first).
            await asyncio.gather(
                *(v.wait_for(lambda r: len(r.frames) >= 30 and r.got("snapshot"), 40) for v in viewers)
            )
            at_origin = await get(http, f"{origin}/api/streams/live")
            rungs = {r["name"]: (r["width"], r["height"]) for r in at_origin["rungs"]}
            for viewer in viewers:
                frames = viewer.record.frames
                assert {(f.width, f.height) for f in frames[-10:]} == {rungs["240p"]}
                counters = [f.counter for f in frames]  # the publisher's own numbered frames, in order
                assert counters == sorted(counters) and counters[-1] - counters[0] >= 29, counters

            # One pull per level, whatever the viewer count: origin <- relay <- edge.
            assert [p["node"] for p in (await get(http, f"{origin}/api/streams/live"))["pulls"]] == ["relay"]
            assert [p["node"] for p in (await get(http, f"{relay}/api/streams/live"))["pulls"]] == ["edge"]
            pulled = (await get(http, f"{edge}/api/streams/live"))["ingest"]
            assert pulled["origin"] == relay and pulled["pulls"] == 1, pulled

            # A card shown on the origin: the same seq and pts_ms two levels down.
            card = {"id": "mug", "title": "Stoneware mug", "price": "12.50", "currency": "EUR",
                    "image_url": "/img/mug.jpg", "buy_url": "https://shop.example/mug"}  # fmt: skip
            async with http.post(f"{origin}/api/streams/live/cards", json=card, headers=host) as res:
                assert res.status == 200, await res.text()
            async with http.post(f"{origin}/api/streams/live/cards/mug/show", headers=host) as res:
                shown = await res.json()
            for viewer in viewers:
                await viewer.wait_for(lambda r: r.got("card", seq=shown["seq"]), 10)
                got = next(m for m in map(json.loads, viewer.record.messages)
                           if m["type"] == "card" and m["seq"] == shown["seq"])  # fmt: skip
                assert (got["action"], got["pts_ms"]) == ("show", shown["pts_ms"])

            # A comment on the edge is decided by the origin; the echo and a refusal come back down.
            ann, bob = viewers[0], viewers[1]
            ann.send(json.dumps({"type": "comment", "text": "does it come in blue?"}))
            bob.send(json.dumps({"type": "comment", "text": "y" * 300}))
            ann.send(json.dumps({"type": "like", "count": 4}))

            def echoed(record: Any) -> bool:
                return any(m.get("type") == "comment" and m.get("mine") and m["text"] == "does it come in blue?"
                           for m in map(json.loads, record.messages))  # fmt: skip

            await ann.wait_for(echoed, 10)
            await bob.wait_for(lambda r: r.got("error", status=422), 10)
            assert not any(m.get("type") == "error" for m in map(json.loads, ann.record.messages))
            listed = await get(http, f"{origin}/api/streams/live/comments", headers=host)
            assert [c["text"] for c in listed["comments"]] == ["does it come in blue?"]
            for viewer in viewers:
                await viewer.wait_for(lambda r: r.got("likes", total=4), 10)

            # The shop's analytics on the origin count the viewers two levels down, and their clicks.
            bob.send(json.dumps({"type": "click", "card": "mug"}))
            seen: list[Any] = []

            async def counted() -> bool:
                stats = await get(http, f"{origin}/api/streams/live/stats", headers=host)
                seen[:] = [stats["viewers"], stats["cards"]]
                mug = next((c for c in stats["cards"] if c["id"] == "mug"), None)
                return stats["viewers"]["now"] == 3 and mug is not None and mug["clicks"] == 1

            try:
                await wait_until(counted, 10)
            except TimeoutError:
                raise AssertionError(f"the origin's stats: {seen}") from None
            viewers_seen = seen[0]
            assert viewers_seen["joins"] == 3 and viewers_seen["peak"] == 3, viewers_seen
            mug = next(c for c in seen[1] if c["id"] == "mug")
            assert mug["impressions"] == 3 and mug["clickers"] == 1, mug

            # The host pins it on the origin: every viewer two levels down is told, and so is one
            # that joins the edge afterwards (the relay and the edge keep the pin for their joiners).
            question = listed["comments"][0]["id"]  # "does it come in blue?"
            async with http.post(f"{origin}/api/streams/live/comments/{question}/pin", headers=host) as res:
                assert res.status == 200, await res.text()

            def pinned(record: Any) -> bool:
                return any(m.get("type") == "comment_pinned" and (m.get("comment") or {}).get("id") == question
                           for m in map(json.loads, record.messages))  # fmt: skip

            for viewer in viewers:
                await viewer.wait_for(pinned, 10)
            latecomer = viewer_of(nodes["edge"])
            try:
                await latecomer.start(http)
                await latecomer.wait_for(lambda r: r.got("snapshot") and pinned(r), 20)
            finally:
                await latecomer.stop(http)
        finally:
            for viewer in viewers:
                await viewer.stop(http)

        async def all_left() -> bool:
            stats = await get(http, f"{origin}/api/streams/live/stats", headers=host)
            return bool(stats["viewers"]["now"] == 0)

        await wait_until(all_left, 10)


def vip_viewer(edge: Server, sub: str) -> WhepViewer:
    claims = {"aud": "vip", "exp": int(time.time()) + 600, "sub": sub, "name": sub}
    viewer = WhepViewer(edge.base, "vip", rendition="240p", audio=False)
    viewer.url += f"&via=test&token={jwt.encode(claims, SECRET, algorithm='HS256')}"
    return viewer


async def test_a_viewer_banned_on_the_origin_cannot_join_an_edge_two_levels_down(nodes: dict[str, Server]) -> None:
    origin, edge = nodes["origin"].base, nodes["edge"]
    host = {"Authorization": f"Bearer {PUBLISH_KEY}"}
    async with aiohttp.ClientSession() as http:
        pub = WhipPublisher(origin, "vip", PUBLISH_KEY, width=320, height=180, audio=False, h264=True)
        await pub.start(http)
        ann = vip_viewer(edge, "u-ann")
        try:
            async def registered() -> bool:
                view = await get(http, f"{origin}/api/cluster")
                return any(n["node_id"] == "origin" and "vip" in n["streams"] for n in view["nodes"])

            await wait_until(registered, 30)
            await ann.start(http)  # the edge pulls vip through the relay
            await ann.wait_for(lambda r: len(r.frames) >= 5 and r.got("snapshot"), 30)
            async with http.post(f"{origin}/api/streams/vip/moderation", json={"action": "ban", "sub": "u-bob"},
                                 headers=host) as res:  # fmt: skip
                assert res.status == 200, await res.text()
            seen: list[str] = []

            async def refused() -> bool:  # the ban travels origin -> relay -> edge on the pulls
                bob = vip_viewer(edge, "u-bob")
                try:
                    await bob.start(http)
                except RuntimeError as exc:
                    seen[:] = [str(exc)]
                    return "403" in str(exc) and "banned" in str(exc)
                finally:
                    await bob.stop(http)
                return False

            await wait_until(refused, 5)
            cat = vip_viewer(edge, "u-cat")  # anyone else still joins
            try:
                await cat.start(http)
                await cat.wait_for(lambda r: len(r.frames) >= 3, 20)
            finally:
                await cat.stop(http)
        finally:
            await ann.stop(http)
            await pub.stop(http)


async def test_when_the_relay_dies_the_edge_pulls_from_the_origin_and_its_viewer_watches_on(
    nodes: dict[str, Server], publisher: WhipPublisher
) -> None:
    """Runs last: it SIGKILLs the relay. The directory stops listing it within dead_after_s (5 s);
    the edge then pulls from the origin at once, and its viewer, still connected, gets the
    publisher's frames again without re-joining."""
    origin, edge = nodes["origin"].base, nodes["edge"].base
    async with aiohttp.ClientSession() as http:
        viewer = viewer_of(nodes["edge"])
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 30)
            assert (await get(http, f"{edge}/api/streams/live"))["ingest"]["origin"] == nodes["relay"].base
            nodes["relay"].proc.send_signal(signal.SIGKILL)
            nodes["relay"].proc.wait(5)
            killed_at, before = time.monotonic(), len(viewer.record.frames)

            async def from_origin() -> bool:
                return bool((await get(http, f"{edge}/api/streams/live"))["ingest"]["origin"] == origin)

            await wait_until(from_origin, 15)
            await viewer.wait_for(lambda r: len(r.frames) >= before + 30, 20)
            resumed = next(f.at for f in viewer.record.frames[before:])
            counters = [f.counter for f in viewer.record.frames[before:]]
            assert counters == sorted(counters), counters  # the publisher's frames, in order

            async def relay_pull_ended() -> bool:  # the origin ends the dead relay's pull too
                at_origin = await get(http, f"{origin}/api/streams/live")
                return [p["node"] for p in at_origin["pulls"]] == ["edge"]

            await wait_until(relay_pull_ended, 10)
            print(f"viewer's first frame after the relay died: {resumed - killed_at:.1f} s")
        finally:
            await viewer.stop(http)
