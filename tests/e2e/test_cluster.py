"""An origin and two edges coordinated on Redis, as real processes (issue 13).

Each node runs in its own network namespace with its own address on a bridge the test builds
(the origin at .1, the edges at .2 and .3, Redis on the bridge's own address), so the edges
reach the origin over a network, not a shared loopback; where namespaces cannot be built, the
same test runs with every node on 127.0.0.1 and says so. The origin runs the default asyncio
loop and the edges uvloop, so both loops are exercised.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import pytest_asyncio

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.browser.conftest import CHROMIUM
from tests.e2e.conftest import PUBLISH_KEY, Server, start_server, stop_server, wait_until, write_config
from tests.e2e.netns import Bridge
from tests.redis_server import RedisServer

TOKEN = "cluster-test-token-0123456789"
GRACE_S = 3.0
SIZES = {"720p": (1280, 720), "480p": (854, 480), "240p": (426, 240)}


@dataclass
class Cluster:
    redis: RedisServer
    origin: Server
    edges: list[Server]
    where: str  # "namespaces" or "loopback"
    killed: set[str] = field(default_factory=set)  # bases of nodes a test SIGKILLed

    def nodes(self) -> list[Server]:
        return [self.origin, *self.edges]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    try:
        redis = RedisServer(tmp)
    except FileNotFoundError:
        pytest.skip("needs Debian's redis-server (./dev.sh test installs it)")
    bridge, why = Bridge.build()
    servers: list[Server] = []
    try:
        hosts: list[tuple[str, list[str]]] = []
        if bridge is not None:
            for host in (1, 2, 3):
                ns, why = bridge.add(host)
                if ns is None:
                    break
                hosts.append((f"{bridge.subnet}.{host}", ["ip", "netns", "exec", ns]))
        where = "namespaces" if len(hosts) == 3 else "loopback"
        if where == "loopback":
            print(f"cluster test on loopback only: {why}")
            hosts = [("127.0.0.1", []) for _ in range(3)]
        redis.host = bridge.address if where == "namespaces" and bridge is not None else "127.0.0.1"
        redis.start()
        config = write_config(
            tmp / "livecart.toml",
            f'[cluster]\nurl = "{redis.url}"\ntoken = "{TOKEN}"\npull_grace_s = {GRACE_S}\n'
            # A stream whose limit of 2 viewers must hold across the nodes, not on each one.
            f'[streams.small]\npublish_key = "{PUBLISH_KEY}"\nmax_viewers = 2\n',
        )
        for index, (address, prefix) in enumerate(hosts):
            role, name, loop = ("origin", "origin", "asyncio") if index == 0 else ("edge", f"edge{index}", "uvloop")
            args = ["--config", str(config), "--role", role, "--node-id", name, "--loop", loop, "--host", address]
            servers.append(start_server(args, tmp / f"{name}.log", prefix=prefix))
        made = Cluster(redis, servers[0], servers[1:], where)
        yield made
    finally:
        codes = [stop_server(s) for s in servers]
        redis.stop()
        if bridge is not None:
            bridge.close()
    for server, code in zip(servers, codes, strict=True):
        log = server.log()
        assert code == 0 or server.base in made.killed, f"{server.log_path.name} exited with {code}\n{log[-3000:]}"
        assert "Traceback" not in log, log[-5000:]


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as res:
        assert res.status == 200, await res.text()
        return await res.json()


async def cluster_view(http: aiohttp.ClientSession, node: Server) -> dict[str, Any]:
    data: dict[str, Any] = await get(http, f"{node.base}/api/cluster")
    return data


def edge_viewer(edge: Server, rendition: str | None = None, **kwargs: Any) -> WhepViewer:
    """A viewer that watches on ``edge`` whatever the load (``via`` marks a routed request)."""
    viewer = WhepViewer(edge.base, "live", rendition=rendition, **kwargs)
    viewer.url += ("&" if "?" in viewer.url else "?") + "via=test"
    return viewer


async def all_registered(http: aiohttp.ClientSession, cluster: Cluster, viewers: dict[str, int] | None = None) -> bool:
    """Every node is in the directory, and the origin's routing sees ``viewers`` on the edges."""
    view = await cluster_view(http, cluster.origin)
    live = {n["node_id"] for n in view["nodes"] if n["alive"]}
    if live != {"origin", "edge1", "edge2"} or set(view["routing"]) != {"edge1", "edge2"}:
        return False  # not all registered, or the origin's routing has not read them yet
    return viewers is None or all(view["routing"].get(n) == v for n, v in viewers.items())


async def post_card(http: aiohttp.ClientSession, base: str, path: str, body: object = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {PUBLISH_KEY}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    async with http.post(f"{base}/api/streams/live{path}", data=data, headers=headers) as res:
        assert res.status == 200, await res.text()
        event: dict[str, Any] = await res.json()
        return event


def card_messages(viewer: WhepViewer) -> list[dict[str, Any]]:
    return [m for m in map(json.loads, viewer.record.messages) if m.get("type") in ("card", "snapshot")]


CARD = {"id": "mug", "title": "Stoneware mug", "price": "12.50", "currency": "EUR",
        "image_url": "/img/mug.jpg", "buy_url": "https://shop.example/mug"}  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def publisher(cluster: Cluster) -> Any:
    async with aiohttp.ClientSession() as http:
        pub = WhipPublisher(cluster.origin.base, "live", PUBLISH_KEY, width=1280, height=720, h264=True)
        await pub.start(http)

        async def live() -> bool:
            stream = await get(http, f"{cluster.origin.base}/api/streams/live")
            return bool(stream["live"]) and {r["name"] for r in stream["rungs"]} == set(SIZES)

        await wait_until(live, 30)

        async def registered() -> bool:  # the origin's next heartbeat names it the stream's origin
            view = await cluster_view(http, cluster.origin)
            return any(n["node_id"] == "origin" and n["streams"] == ["live"] for n in view["nodes"])

        await wait_until(registered, 10)
        yield pub
        await pub.stop(http)


@pytest.mark.asyncio(loop_scope="module")
async def test_edges_pull_once_and_their_viewers_decode_every_rung_with_the_origins_cards(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """Acceptance 1: every rung decoded on both edges, the same card seq and pts_ms everywhere,
    a late joiner's snapshot, and exactly one pull per edge whatever its viewer count."""
    print(f"cluster on {cluster.where}: " + ", ".join(s.base for s in cluster.nodes()))
    edge1, edge2 = cluster.edges
    async with aiohttp.ClientSession() as http:
        await wait_until(lambda: all_registered(http, cluster), 20)
        viewers = [edge_viewer(edge1, r) for r in SIZES] + [edge_viewer(edge2, r) for r in ("720p", "240p")]
        late = edge_viewer(edge2, "480p")
        try:
            for viewer in viewers:
                await viewer.start(http)
            await asyncio.gather(*(v.wait_for(lambda r: len(r.frames) >= 30, 40) for v in viewers))
            for viewer in viewers:
                rendition = viewer.url.split("rendition=")[1].split("&")[0]
                frames = viewer.record.frames
                assert {(f.width, f.height) for f in frames[-10:]} == {SIZES[rendition]}, viewer.url
                counters = [f.counter for f in frames]
                # The publisher's own numbered frames, in order, through origin and edge.
                assert counters == sorted(counters) and counters[-1] - counters[0] >= 29, (viewer.url, counters)

            await post_card(http, cluster.origin.base, "/cards", CARD)
            shown = await post_card(http, cluster.origin.base, "/cards/mug/show")
            for viewer in viewers:
                await viewer.wait_for(lambda r: r.got("card", seq=shown["seq"]), 10)
            for viewer in viewers:
                got = next(m for m in card_messages(viewer) if m.get("seq") == shown["seq"] and m["type"] == "card")
                assert (got["action"], got["pts_ms"], got["card"]["id"]) == ("show", shown["pts_ms"], "mug")

            await late.start(http)
            await late.wait_for(lambda r: r.got("snapshot"), 20)
            snapshot = next(m for m in card_messages(late) if m["type"] == "snapshot")
            assert snapshot["seq"] == shown["seq"] and [c["id"] for c in snapshot["cards"]] == ["mug"]
            await late.wait_for(lambda r: len(r.frames) >= 10, 20)

            stream = await get(http, f"{cluster.origin.base}/api/streams/live")
            assert sorted(p["node"] for p in stream["pulls"]) == ["edge1", "edge2"]  # 3 and 3 viewers, 2 pulls
            assert stream["viewers"] == 0  # the edges' viewers are theirs, not the origin's
            for edge in cluster.edges:
                pulled = (await get(http, f"{edge.base}/api/streams/live"))["ingest"]
                assert pulled["path"] == "pull" and pulled["pulls"] == 1, pulled
            async with http.get(f"{cluster.origin.base}/metrics") as res:
                assert "livecart_cluster_pulls_in 2.0" in await res.text()
            print(f"card seq {shown['seq']} pts_ms {shown['pts_ms']} on {len(viewers) + 1} edge viewers")
        finally:
            for viewer in [*viewers, late]:
                await viewer.stop(http)


def talk_items(viewer: WhepViewer) -> list[dict[str, Any]]:
    """Every comment and error a viewer was sent (the display stream's batches unpacked)."""
    out: list[dict[str, Any]] = []
    for message in map(json.loads, viewer.record.messages):
        if message["type"] in ("comment", "error"):
            out.append(message)
        elif message["type"] == "comments":
            out.extend(message["comments"])
    return out


def says(text: str, *, mine: bool) -> Any:
    return lambda record: any(
        m.get("text") == text and m.get("mine") is mine
        for m in (json.loads(t) for t in record.messages)
        for m in ([m] if m["type"] == "comment" else m.get("comments", []))
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_comments_and_likes_on_either_edge_are_one_conversation_owned_by_the_origin(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """A comment posted on an edge is checked, numbered and stored by the origin, echoed to its
    author, shown to the other edge's viewers; a refusal reaches its author only; likes on both
    edges add up to one exact total everywhere; the conversation's HTTP API on an edge is the
    origin's (307)."""
    edge1, edge2 = cluster.edges
    host = {"Authorization": f"Bearer {PUBLISH_KEY}"}
    async with aiohttp.ClientSession() as http:
        await wait_until(lambda: all_registered(http, cluster), 20)
        async with http.get(f"{cluster.origin.base}/api/streams/live/comments", headers=host) as res:
            before = (await res.json())["likes"]
        ann, bob = edge_viewer(edge1, "240p", audio=False), edge_viewer(edge2, "240p", audio=False)
        try:
            for viewer in (ann, bob):
                await viewer.start(http)
            # Watching, with the data channel open (its snapshot arrived: frames may come first).
            await asyncio.gather(
                *(v.wait_for(lambda r: len(r.frames) >= 3 and r.got("snapshot"), 30) for v in (ann, bob))
            )
            question, hello, rant = "is the mug dishwasher safe?", "hello from edge two", "x" * 300
            ann.send(json.dumps({"type": "comment", "text": question}))
            ann.send(json.dumps({"type": "comment", "text": rant}))  # over the stream's 200 characters
            bob.send(json.dumps({"type": "comment", "text": hello}))
            ann.send(json.dumps({"type": "like", "count": 5}))
            bob.send(json.dumps({"type": "like", "count": 7}))
            bob.send(json.dumps({"type": "like", "count": 3, "gift": "rose"}))

            await ann.wait_for(says(question, mine=True), 10)  # the author's echo, from the origin
            await bob.wait_for(says(hello, mine=True), 10)
            await bob.wait_for(says(question, mine=False), 10)  # the display stream, across edges
            await ann.wait_for(says(hello, mine=False), 10)
            await ann.wait_for(lambda r: r.got("error", status=422), 10)
            assert "200" in next(m["reason"] for m in talk_items(ann) if m["type"] == "error")
            assert not any(m["type"] == "error" for m in talk_items(bob))
            assert not any(m.get("text") == rant for v in (ann, bob) for m in talk_items(v))
            echo = next(m for m in talk_items(ann) if m.get("text") == question and m["mine"])
            shown = next(m for m in talk_items(bob) if m.get("text") == question and not m["mine"])
            assert echo["id"] == shown["id"] and echo["pts_ms"] == shown["pts_ms"]  # one comment, the origin's

            likes, roses = before["total"] + 12, before["gifts"].get("rose", 0) + 3
            for viewer in (ann, bob):
                await viewer.wait_for(lambda r: r.got("likes", total=likes), 10)
                totals = [m for m in map(json.loads, viewer.record.messages) if m["type"] == "likes"][-1]
                assert totals["gifts"].get("rose") == roses

            # The host's list, on the origin and through an edge (relayed with the host key): the same.
            async with http.get(f"{cluster.origin.base}/api/streams/live/comments", headers=host) as res:
                listed = await res.json()
            async with http.get(f"{edge2.base}/api/streams/live/comments", headers=host) as res:
                assert res.status == 200 and not res.history, await res.text()
                assert (await res.json())["comments"] == listed["comments"]
            async with http.get(f"{edge2.base}/api/streams/live/comments") as res:  # no key: the origin's 401
                assert res.status == 401 and "bearer" in (await res.text()).lower()
            texts = [c["text"] for c in listed["comments"]]
            assert question in texts and hello in texts and rant not in texts
            assert listed["likes"]["total"] == likes
            # Posting over HTTP on an edge is posting on the origin; its refusals are the origin's.
            async with http.post(f"{edge1.base}/api/streams/live/comments", json={"text": "posted over http"}) as res:
                assert res.status == 201 and json.loads(await res.text())["mine"], await res.text()
            await bob.wait_for(says("posted over http", mine=False), 10)
            async with http.post(f"{edge1.base}/api/streams/live/comments", json={"text": rant}) as res:
                assert res.status == 422 and "200" in await res.text()
            async with http.get(f"{edge1.base}/api/streams/live/comments/events", allow_redirects=False) as res:
                assert res.status == 307 and res.headers["Location"].startswith(cluster.origin.base)
            for edge in cluster.edges:
                pulled = (await get(http, f"{edge.base}/api/streams/live"))["ingest"]
                assert pulled["talk"]["comments_lost"] == 0
            assert (await get(http, f"{cluster.origin.base}/api/streams/live"))["bad_edge_messages"] == 0
        finally:
            for viewer in (ann, bob):
                await viewer.stop(http)


async def relay_counters(http: aiohttp.ClientSession, edge: Server) -> dict[str, int]:
    data = await get(http, f"{edge.base}/api/streams")
    counters: dict[str, int] = data["cluster"]["hls_relay"]
    return counters


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as res:
        return res.status, res.headers.get("Cache-Control", ""), await res.read()


@pytest.mark.asyncio(loop_scope="module")
async def test_edges_serve_the_origins_ll_hls_each_request_asked_of_the_origin_once(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """An edge relays the origin's LL-HLS as a CDN would: the same playlists and part names on
    every edge (a player moved between edges goes on), one upstream request however many players
    block on the next part, parts that decode at their rung's size."""
    edge1, edge2 = cluster.edges
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        status, cache, body = await fetch(http, f"{edge1.base}/hls/live/index.m3u8")
        assert status == 200 and cache.startswith("public"), (status, cache, body[:200])
        assert body == (await fetch(http, f"{cluster.origin.base}/hls/live/index.m3u8"))[2]
        status, _, body = await fetch(http, f"{edge1.base}/hls/nosuch/index.m3u8")
        assert status == 404 and b"nosuch" in body, body
        playlist = (await fetch(http, f"{edge1.base}/hls/live/240p/index.m3u8"))[2].decode()
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', playlist)
        assert hint is not None, playlist[-500:]
        name = hint.group(1)
        msn, part = (int(n) for n in name.split("-", 1)[1].removesuffix(".m4s").split("."))
        before = await relay_counters(http, edge1)
        blocking = f"/hls/live/240p/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        answers = await asyncio.gather(*(fetch(http, f"{edge1.base}{blocking}") for _ in range(200)))
        assert {a[0] for a in answers} == {200} and len({a[2] for a in answers}) == 1
        assert f'URI="{name}"'.encode() in answers[0][2]  # the part the players waited for is there
        parts = await asyncio.gather(*(fetch(http, f"{edge1.base}/hls/live/240p/{name}") for _ in range(50)))
        assert {p[0] for p in parts} == {200} and len({p[2] for p in parts}) == 1 and "immutable" in parts[0][1]
        after = await relay_counters(http, edge1)
        asked = after["upstream_requests"] - before["upstream_requests"]
        assert asked <= 2, (before, after)  # the blocking answer once, the part once (250 requests)
        init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', answers[0][2].decode())
        assert init is not None
        init_body = (await fetch(http, f"{edge1.base}/hls/live/240p/{init.group(1)}"))[2]
        independent = [line for line in answers[0][2].decode().splitlines() if "INDEPENDENT=YES" in line]
        first = re.search(r'URI="([^"]+)"', independent[-1]) if independent else None
        assert first is not None, "a part that starts on a keyframe"
        status, _, key_part = await fetch(http, f"{edge1.base}/hls/live/240p/{first.group(1)}")
        assert status == 200
        with av.open(io.BytesIO(init_body + key_part)) as container:
            sizes = {(f.width, f.height) for f in container.decode(video=0)}
        assert sizes == {SIZES["240p"]}, sizes
        # The other edge and the origin name and serve the same part, byte for byte.
        for base in (edge2.base, cluster.origin.base):
            status, _, data = await fetch(http, f"{base}/hls/live/240p/{name}")
            assert status == 200 and data == parts[0][2]
        async with http.get(f"{edge1.base}/metrics") as res:
            assert "livecart_edge_hls_upstream_requests" in await res.text()
        print(f"250 requests to edge1 for the next part: {asked} to the origin; counters {after}")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_viewer_posting_to_the_origin_is_sent_to_the_least_loaded_edge(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """Acceptance 2 (aiortc): a 307 from the origin, followed by aiohttp, to the edge with fewer viewers."""
    edge1, edge2 = cluster.edges
    async with aiohttp.ClientSession() as http:
        load = [edge_viewer(edge1, "240p", audio=False, read_pattern=False) for _ in range(3)]
        load += [edge_viewer(edge2, "240p", audio=False, read_pattern=False)]
        joined: list[WhepViewer] = []
        try:
            for viewer in load:
                await viewer.start(http)
            await wait_until(lambda: all_registered(http, cluster, {"edge1": 3, "edge2": 1}), 20)
            async with http.post(
                f"{cluster.origin.base}/whep/live", data="v=0", headers={"Content-Type": "application/sdp"},
                allow_redirects=False,
            ) as res:  # fmt: skip
                assert res.status == 307
                assert res.headers["Location"].startswith(f"{edge2.base}/whep/live?")
            # That redirect counts as a viewer sent to edge2 until edge2's next heartbeat says
            # otherwise; wait for it, or the second join below would tie 3-3 with edge1.
            await wait_until(lambda: all_registered(http, cluster, {"edge1": 3, "edge2": 1}), 20)
            for _ in range(2):  # the second join sees the first one counted on edge2 already
                viewer = WhepViewer(cluster.origin.base, "live", rendition="240p")
                joined.append(viewer)
                await viewer.start(http)
            assert [v.location.split("/whep/")[0] for v in joined if v.location] == [edge2.base, edge2.base]
            await asyncio.gather(*(v.wait_for(lambda r: len(r.frames) >= 10, 30) for v in joined))
            # Now 3 and 3: the next one may go to either edge, never to the origin.
            third = WhepViewer(cluster.origin.base, "live", rendition="240p")
            joined.append(third)
            await wait_until(lambda: all_registered(http, cluster, {"edge1": 3, "edge2": 3}), 20)
            await third.start(http)
            assert third.location is not None and third.location.split("/whep/")[0] in (edge1.base, edge2.base)
        finally:
            for viewer in [*load, *joined]:
                await viewer.stop(http)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: ./dev.sh test installs it")
@pytest.mark.asyncio(loop_scope="module")
async def test_chromiums_watch_page_on_the_origin_follows_the_redirect_and_plays_from_an_edge(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """Acceptance 2 (Chromium): the watch page's WHEP POST is redirected; the video plays."""
    from playwright.async_api import async_playwright

    async with aiohttp.ClientSession() as http, async_playwright() as pw:
        await wait_until(lambda: all_registered(http, cluster, {"edge1": 0, "edge2": 0}), 20)
        args = ["--no-sandbox", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = await browser.new_page()
        try:
            await page.goto(f"{cluster.origin.base}/watch/live")
            await page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=20000)
            frames = "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"
            first = await page.evaluate(frames)
            await page.wait_for_function(f"{frames} > {first + 30}", timeout=20000)
            watching = [(await get(http, f"{e.base}/api/streams/live"))["viewers"] for e in cluster.edges]
            origin = await get(http, f"{cluster.origin.base}/api/streams/live")
            assert sorted(watching) == [0, 1] and origin["viewers"] == 0, (watching, origin["viewers"])
        finally:
            await page.close(run_before_unload=True)  # its pagehide DELETEs the session
            await browser.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_viewers_keep_watching_through_a_redis_outage_and_joins_resume_after_it(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """Acceptance 3, first fault: Redis stopped for 10 s under 10 viewers on an edge."""
    edge = cluster.edges[0]
    async with aiohttp.ClientSession() as http:
        viewers = [edge_viewer(edge, "240p", audio=False) for _ in range(10)]
        try:
            for viewer in viewers:
                await viewer.start(http)
            await asyncio.gather(*(v.wait_for(lambda r: len(r.frames) >= 10, 30) for v in viewers))

            async def received() -> int:
                rungs = (await get(http, f"{edge.base}/api/streams/live"))["rungs"]
                return int(next(r["frames_out"] for r in rungs if r["name"] == "240p"))

            before = [len(v.record.frames) for v in viewers]
            sent_before = await received()
            cluster.redis.stop()
            stopped_at = asyncio.get_running_loop().time()

            async def unreachable() -> bool:
                return not (await cluster_view(http, edge))["directory_reachable"]

            await wait_until(unreachable, 10)
            await wait_until(lambda: _elapsed(stopped_at, 10.0), 15)  # the outage lasts 10 s
            sent = await received() - sent_before
            decoded = [len(v.record.frames) - b for v, b in zip(viewers, before, strict=True)]
            cluster.redis.start()
            print(f"edge received {sent} frames of 240p in the outage; viewers decoded {min(decoded)}-{max(decoded)}")
            assert sent >= 20  # the pull went on without Redis (how many depends on the machine's load)
            for count in decoded:
                assert count >= 0.99 * sent - 3, (count, sent)  # a frame or two may still be in flight

            await wait_until(lambda: all_registered(http, cluster), 20)  # everyone re-registered by itself
            newcomer = WhepViewer(cluster.origin.base, "live", rendition="240p")
            viewers.append(newcomer)
            await newcomer.start(http)
            assert newcomer.location is not None and "/whep/live/" in newcomer.location
            assert not newcomer.location.startswith(cluster.origin.base)  # routed to an edge again
            await newcomer.wait_for(lambda r: len(r.frames) >= 10, 30)
        finally:
            for viewer in viewers:
                await viewer.stop(http)
    assert "cluster directory unreachable" in edge.log()
    assert "directory reachable again" in edge.log()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_vp8_only_viewer_of_an_edge_is_sent_to_the_origin_and_decodes_there(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    async with aiohttp.ClientSession() as http:
        viewer = edge_viewer(cluster.edges[0], "240p", audio=False, video_codec="VP8")
        try:
            await viewer.start(http)  # 307 from the edge (it has no decoder for a VP8 encoder)
            assert viewer.location is not None and viewer.location.startswith(cluster.origin.base), viewer.location
            assert "video/VP8" in viewer.answer or "VP8/90000" in viewer.answer
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 30)
            assert {(f.width, f.height) for f in viewer.record.frames} == {SIZES["240p"]}
            counters = [f.counter for f in viewer.record.frames]
            assert counters == sorted(counters) and 0 < counters[-1] <= publisher.video.counter
        finally:
            await viewer.stop(http)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_streams_viewer_limit_holds_across_the_edges(cluster: Cluster) -> None:
    edge1, edge2 = cluster.edges
    async with aiohttp.ClientSession() as http:
        pub = WhipPublisher(cluster.origin.base, "small", PUBLISH_KEY, width=320, height=240, h264=True, audio=False)
        await pub.start(http)
        viewers: list[WhepViewer] = []

        def small_viewer(edge: Server) -> WhepViewer:
            viewer = WhepViewer(edge.base, "small", audio=False, read_pattern=False)
            viewer.url += "?via=test"  # served on that edge whatever the load
            return viewer

        async def counted(want: int) -> bool:  # what edge1's admission sees (its last heartbeat read)
            view = await cluster_view(http, edge1)
            return bool(view["stream_viewers"].get("small") == want)

        try:
            async def registered() -> bool:
                view = await cluster_view(http, cluster.origin)
                return any(n["node_id"] == "origin" and "small" in n["streams"] for n in view["nodes"])

            await wait_until(registered, 15)
            for edge in (edge1, edge2):  # one viewer on each edge: the limit (2) is reached
                viewers.append(small_viewer(edge))
                await viewers[-1].start(http)
                await viewers[-1].wait_for(lambda r: len(r.frames) >= 1, 30)
            await wait_until(lambda: counted(2), 10)
            refused = small_viewer(edge1)  # edge1 has room for 2 on its own, the cluster has none
            with pytest.raises(RuntimeError, match=r"503: stream 'small' is full: 2 of 2 viewers across the cluster"):
                await refused.start(http)
            await refused.stop(None, delete=False)
            await viewers.pop().stop(http)  # edge2's viewer leaves: room again after edge2's heartbeat
            await wait_until(lambda: counted(1), 10)
            viewers.append(small_viewer(edge1))
            await viewers[-1].start(http)
            await viewers[-1].wait_for(lambda r: len(r.frames) >= 1, 30)
        finally:
            for viewer in viewers:
                await viewer.stop(http)
            await pub.stop(http)


async def _elapsed(since: float, seconds: float) -> bool:
    return asyncio.get_running_loop().time() - since >= seconds


@pytest.mark.asyncio(loop_scope="module")
async def test_an_edge_drops_its_pull_after_its_last_viewer_and_the_grace(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    edge = cluster.edges[1]
    async with aiohttp.ClientSession() as http:
        viewer = edge_viewer(edge, "240p", audio=False)
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 10, 30)
        await viewer.stop(http)

        async def nobody_watches() -> bool:  # also a Chromium viewer of an earlier test that never said DELETE
            return (await get(http, f"{edge.base}/api/streams/live"))["viewers"] == 0

        await wait_until(nobody_watches, 45)
        left = asyncio.get_running_loop().time()

        async def pull_gone() -> bool:
            stream = await get(http, f"{cluster.origin.base}/api/streams/live")
            return "edge2" not in [p["node"] for p in stream["pulls"]]

        await wait_until(pull_gone, GRACE_S + 10)
        assert asyncio.get_running_loop().time() - left >= GRACE_S - 0.5  # not before the grace ran out
        edge_stream = await get(http, f"{edge.base}/api/streams/live")
        assert edge_stream["state"] == "offline" and edge_stream["ingest"] is None


@pytest.mark.asyncio(loop_scope="module")
async def test_edge_viewers_resume_without_rejoining_when_the_publisher_reconnects_to_the_origin(
    cluster: Cluster, publisher: WhipPublisher
) -> None:
    """Acceptance 3, last fault (runs last: it replaces the module's publisher)."""
    edge = cluster.edges[0]
    async with aiohttp.ClientSession() as http:
        viewer = edge_viewer(edge, "240p", audio=False)
        replacement = WhipPublisher(cluster.origin.base, "live", PUBLISH_KEY, width=1280, height=720, h264=True)
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 30)
            await publisher.stop(http)
            await viewer.wait_for(lambda r: r.got("stream", state="offline"), 10)  # told by the edge, from the origin
            before = len(viewer.record.frames)
            old_max = max(f.counter for f in viewer.record.frames)

            def fresh(r: Any) -> list[Any]:  # the new publisher's frames: its counter starts again near 0
                return [f for f in r.frames[before:] if 0 <= f.counter < old_max // 2]

            loop = asyncio.get_running_loop()
            started = loop.time()
            await replacement.start(http)
            await viewer.wait_for(lambda r: len(fresh(r)) >= 10, 20)
            resumed = fresh(viewer.record)[0].at - started
            print(f"edge viewer's first frame of the new publisher {resumed:.2f} s after its POST")
            assert resumed < 3.0
            assert viewer.pc.connectionState == "connected"  # the same session all along
            assert viewer.record.got("stream", state="live")
            counters = [f.counter for f in fresh(viewer.record)]
            assert counters == sorted(counters)  # the new publisher's numbered frames, in order
        finally:
            await viewer.stop(http)
            await replacement.stop(http)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: ./dev.sh test installs it")
@pytest.mark.asyncio(loop_scope="module")
async def test_a_chromium_viewer_of_a_killed_edge_plays_again_through_the_other_edge_within_5_s(
    cluster: Cluster,
) -> None:
    """Acceptance 3, an edge SIGKILLed (runs last: the edge stays dead). The watch page sees its
    connection go, posts again to the origin naming the node it lost, and is sent to the other."""
    from playwright.async_api import async_playwright

    async with aiohttp.ClientSession() as http, async_playwright() as pw:
        publisher = WhipPublisher(cluster.origin.base, "live", PUBLISH_KEY, width=1280, height=720, h264=True)
        await publisher.start(http)
        args = ["--no-sandbox", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:

            async def live_and_routed() -> bool:
                stream = await get(http, f"{cluster.origin.base}/api/streams/live")
                return stream["state"] == "live" and await all_registered(http, cluster)

            await wait_until(live_and_routed, 30)
            page = await browser.new_page()
            await page.goto(f"{cluster.origin.base}/watch/live")
            await page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=20000)
            decoding = """async () => {
              const p = window.livecartPlayer;
              if (!p.pc || !p.resource) return false;
              let n = 0;
              (await p.pc.getStats()).forEach((s) => {
                if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
              });
              return n > 30;
            }"""
            await page.wait_for_function(decoding, timeout=20000, polling=100)  # settled on its edge
            resource = await page.evaluate("window.livecartPlayer.resource")
            victim = next(e for e in cluster.edges if resource.startswith(e.base))
            other = next(e for e in cluster.edges if e is not victim)
            cluster.killed.add(victim.base)
            victim.proc.kill()
            killed_at = asyncio.get_running_loop().time()
            playing_elsewhere = f"""async () => {{
              const p = window.livecartPlayer;
              if (!p.pc || !p.resource || !p.resource.startsWith("{other.base}/")) return false;
              let n = 0;
              (await p.pc.getStats()).forEach((s) => {{
                if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
              }});
              return n > 0;
            }}"""
            await page.wait_for_function(playing_elsewhere, timeout=20000, polling=100)
            took = asyncio.get_running_loop().time() - killed_at
            print(f"the Chromium viewer decoded again on the other edge {took:.2f} s after the SIGKILL")
            assert took < 5.0
        finally:
            await browser.close()
            await publisher.stop(http)
