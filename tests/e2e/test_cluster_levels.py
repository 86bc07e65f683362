"""Two relay levels, with real processes over loopback: Redis, an origin, a level-1 relay, a
level-2 relay and an edge. Each level pulls from the one above it, once: origin <- relay1 <-
relay2 <- edge; the edge's viewer decodes the publisher's numbered frames and gets the origin's
card with the same seq and pts_ms three hops down. When the level-2 relay dies, the edge pulls
from the next live level up (relay1) and its viewer watches on without re-joining."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.cluster_nodes import cluster_nodes
from tests.e2e.cluster_nodes import get_json as get
from tests.e2e.conftest import PUBLISH_KEY, Server, wait_until

TOKEN = "cluster-levels-token-0123456789"
NODES = {"origin": ["--role", "origin"], "relay1": ["--role", "relay"],
         "relay2": ["--role", "relay", "--relay-level", "2"], "edge": ["--role", "edge"]}  # fmt: skip
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    with cluster_nodes(tmp_path_factory.mktemp("levels"), NODES, token=TOKEN, may_be_killed="relay2") as servers:
        yield servers  # (the test kills relay2)


async def pullers(http: aiohttp.ClientSession, base: str) -> list[str]:
    return [p["node"] for p in (await get(http, f"{base}/api/streams/live"))["pulls"]]


async def test_each_level_pulls_once_from_the_level_above_and_a_dead_level_is_skipped(
    nodes: dict[str, Server],
) -> None:
    base = {name: s.base for name, s in nodes.items()}
    host = {"Authorization": f"Bearer {PUBLISH_KEY}"}
    async with aiohttp.ClientSession() as http:
        pub = WhipPublisher(base["origin"], "live", PUBLISH_KEY, width=640, height=360, audio=False, h264=True)
        await pub.start(http)
        viewers: list[WhepViewer] = []
        try:
            beats: dict[str, int] = {}

            async def ready() -> bool:  # every node listed, with its level, and the stream's origin known
                view = await get(http, f"{base['origin']}/api/cluster")
                alive = {n["node_id"]: n for n in view["nodes"] if n["alive"]}
                levels = {name: n["level"] for name, n in alive.items()}
                live = (await get(http, f"{base['origin']}/api/streams/live"))["live"]
                # ... and in the directory: the origin registers its streams at its heartbeat, and
                # a pull asked for before that gets "no live origin" (a clean-clone CI failure)
                registered = alive.get("origin", {}).get("streams") == ["live"]
                return bool(live) and registered and levels == {"origin": 0, "relay1": 1, "relay2": 2, "edge": 0}

            await wait_until(ready, 30)
            for name in ("relay2", "edge"):  # the pullers' own node lists, read at their next heartbeat
                beats[name] = (await get(http, f"{base[name]}/api/cluster"))["heartbeats"]

            async def beaten() -> bool:
                counts = {n: (await get(http, f"{base[n]}/api/cluster"))["heartbeats"] for n in beats}
                return all(counts[n] > beats[n] for n in beats)

            await wait_until(beaten, 10)

            for _ in range(2):
                viewer = WhepViewer(base["edge"], "live", rendition="240p", audio=False)
                viewer.url += "&via=test"  # watched where it is posted
                viewers.append(viewer)
                await viewer.start(http)
            for viewer in viewers:
                await viewer.wait_for(lambda r: len(r.frames) >= 30 and r.got("snapshot"), 40)
                counters = [f.counter for f in viewer.record.frames]  # the publisher's frames, in order
                assert counters == sorted(counters) and counters[-1] - counters[0] >= 29, counters

            # One pull per level, whatever the viewer count.
            assert await pullers(http, base["origin"]) == ["relay1"]
            assert await pullers(http, base["relay1"]) == ["relay2"]
            assert await pullers(http, base["relay2"]) == ["edge"]
            assert (await get(http, f"{base['edge']}/api/streams/live"))["ingest"]["origin"] == base["relay2"]

            card = {"id": "mug", "title": "Stoneware mug", "price": "12.50", "currency": "EUR",
                    "image_url": "/img/mug.jpg", "buy_url": "https://shop.example/mug"}  # fmt: skip
            async with http.post(f"{base['origin']}/api/streams/live/cards", json=card, headers=host) as res:
                assert res.status == 200, await res.text()
            async with http.post(f"{base['origin']}/api/streams/live/cards/mug/show", headers=host) as res:
                shown = await res.json()
            for viewer in viewers:
                await viewer.wait_for(lambda r: r.got("card", seq=shown["seq"]), 10)
                got = next(m for m in map(json.loads, viewer.record.messages)
                           if m["type"] == "card" and m["seq"] == shown["seq"])  # fmt: skip
                assert (got["action"], got["pts_ms"]) == ("show", shown["pts_ms"])

            # Level 2 dies: the edge goes one level up, to relay1, not to the origin.
            nodes["relay2"].proc.send_signal(signal.SIGKILL)
            nodes["relay2"].proc.wait(5)
            killed_at, before = time.monotonic(), len(viewers[0].record.frames)

            async def from_relay1() -> bool:
                ingest = (await get(http, f"{base['edge']}/api/streams/live"))["ingest"]
                return bool(ingest["origin"] == base["relay1"])

            await wait_until(from_relay1, 15)
            for viewer in viewers:
                await viewer.wait_for(lambda r: len(r.frames) >= before + 30, 20)
            counters = [f.counter for f in viewers[0].record.frames[before:]]
            assert counters == sorted(counters), counters
            resumed = next(f.at for f in viewers[0].record.frames[before:])

            async def relayed_once() -> bool:  # relay1 ends the dead relay's pull and serves the edge's
                return await pullers(http, base["relay1"]) == ["edge"]

            await wait_until(relayed_once, 10)
            assert await pullers(http, base["origin"]) == ["relay1"]
            print(f"viewer's first frame after level 2 died: {resumed - killed_at:.1f} s")
        finally:
            for viewer in viewers:
                await viewer.stop(http)
            await pub.stop(http)
