"""Product cards end to end: host API, data-channel and SSE delivery, persistence, sync (issue 4)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import Server, start_server, stop_server, write_config

KEY = "cards-test-key-0123456789"
HOST_KEY = "cards-host-key-0123456789"


def _config(tmp: Path) -> Path:
    return write_config(
        tmp / "livecart.toml",
        f'[streams.shop]\npublish_key = "{KEY}"\nhost_key = "{HOST_KEY}"\nmax_viewers = 60\n'
        f'[streams.sync]\npublish_key = "{KEY}"\n[streams.limits]\npublish_key = "{KEY}"\nhost_key = "{HOST_KEY}"\n',
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cards-data")


@pytest.fixture(scope="module")
def cards_server(data_dir: Path) -> Iterator[Server]:
    config = _config(data_dir)
    server = start_server(["--config", str(config), "--data-dir", str(data_dir)], data_dir / "server.log")
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def card(n: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"sku-{n}",
        "title": f"Product {n}",
        "price": f"{n}.99",
        "currency": "EUR",
        "image_url": f"/img/{n}.jpg",
        "buy_url": f"https://shop.example/p/{n}",
        **extra,
    }


async def post(http: aiohttp.ClientSession, url: str, body: object = None, token: str = KEY) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"}
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.post(url, data=data, headers=headers) as res:
        return res.status, await res.text()


async def post_ok(http: aiohttp.ClientSession, url: str, body: object = None) -> dict[str, object]:
    """Post, backing off while the stream's 20/s limit says 429 (an earlier test used it up)."""
    while True:
        status, text = await post(http, url, body)
        if status != 429:
            assert status == 200, text
            return json.loads(text)  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)


async def actions(http: aiohttp.ClientSession, base: str, count: int) -> list[tuple[dict[str, object], float]]:
    """Post ``count`` card actions as fast as the 20/s limit allows; (event, posted_at) each."""
    done: list[tuple[dict[str, object], float]] = []
    n = 0
    while len(done) < count:
        step = len(done) % 3
        url = f"{base}/cards" if step == 0 else f"{base}/cards/sku-{n}/{'show' if step == 1 else 'hide'}"
        body = card(n) if step == 0 else None
        posted = time.monotonic()
        status, text = await post(http, url, body)
        if status == 429:
            await asyncio.sleep(0.05)  # the documented back-off: the limit is the point here
            continue
        assert status == 200, text
        done.append((json.loads(text), posted))
        if step == 2:
            n += 1
    return done


def card_events(messages: list[str]) -> list[dict[str, object]]:
    return [m for m in map(json.loads, messages) if m.get("type") == "card"]


async def test_fifty_viewers_get_every_action_in_order_and_a_late_joiner_the_snapshot(
    cards_server: Server, http: aiohttp.ClientSession
) -> None:
    base = f"{cards_server.base}/api/streams/shop"
    viewers = [WhepViewer(cards_server.base, "shop", read_pattern=False) for _ in range(50)]
    late = WhepViewer(cards_server.base, "shop", read_pattern=False)
    try:
        await asyncio.gather(*(v.start(http) for v in viewers))
        await asyncio.gather(*(v.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 20) for v in viewers))
        first = await actions(http, base, 100)
        await late.start(http)
        await late.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 20)
        second = await actions(http, base, 100)
        last_seq = second[-1][0]["seq"]
        await asyncio.gather(
            *(v.wait_for(lambda r: any(f'"seq":{last_seq},' in m for m in r.messages), 20) for v in [*viewers, late])
        )
        expected = [e["seq"] for e, _ in first + second]
        assert expected == list(range(expected[0], expected[0] + 200))
        latencies = []
        posted_at = {e["seq"]: t for e, t in first + second}
        for viewer in viewers:
            got = card_events(viewer.record.messages)
            assert [m["seq"] for m in got] == expected  # every action, in order, no gap
            for m, at in zip(viewer.record.messages, viewer.record.message_times, strict=True):
                parsed = json.loads(m)
                if parsed.get("type") == "card":
                    latencies.append(at - posted_at[parsed["seq"]])
        # The late joiner: a snapshot equal to what was on screen, then exactly what followed.
        snapshot = next(m for m in map(json.loads, late.record.messages) if m["type"] == "snapshot")
        on_screen_then = {e["card"]["id"] for e, _ in first if e["action"] == "show"} - {
            e["card"]["id"] for e, _ in first if e["action"] == "hide"
        }
        assert {c["id"] for c in snapshot["cards"]} == on_screen_then
        assert snapshot["seq"] == first[-1][0]["seq"]
        assert [m["seq"] for m in card_events(late.record.messages)] == [e["seq"] for e, _ in second]
        median_ms = statistics.median(latencies) * 1000
        print(f"card delivery to 50 viewers: median {median_ms:.1f} ms, max {max(latencies) * 1000:.1f} ms")
        assert median_ms < 100
    finally:
        await asyncio.gather(*(v.stop(http) for v in [*viewers, late]))


def media_ms(clock: dict[str, Any], rtp: int) -> float:
    """A frame's media time by a ``clock`` message (``relay.messages.Clock``)."""
    delta = (rtp - clock["rtp"]) % 2**32
    delta -= 2**32 if delta >= 2**31 else 0
    return float((clock["media_ts"] + delta) * 1000 / clock["rtp_clock_hz"])


class SseReader:
    """Reads one SSE connection in the background: (id, event name, data) per event."""

    def __init__(self, http: aiohttp.ClientSession, url: str, last_id: int | None = None) -> None:
        self.events: list[tuple[int, str, dict[str, object]]] = []
        self._changed = asyncio.Event()
        headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
        self._task = asyncio.ensure_future(self._read(http, url, headers))

    async def _read(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        async with http.get(url, headers=headers) as res:
            assert res.status == 200 and res.headers["Content-Type"].startswith("text/event-stream")
            event_id, name = 0, "message"
            async for raw in res.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.append((event_id, name, json.loads(line[6:])))
                    name = "message"
                    self._changed.set()

    async def wait_count(self, count: int, timeout: float) -> None:
        async def _wait() -> None:
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_sse_gets_the_same_sequence_and_resumes_by_last_event_id(
    cards_server: Server, http: aiohttp.ClientSession
) -> None:
    base = f"{cards_server.base}/api/streams/shop"
    reader = SseReader(http, f"{base}/events")
    try:
        await reader.wait_count(1, 10)
        snapshot_id, name, snapshot = reader.events[0]
        assert name == "snapshot" and snapshot["seq"] == snapshot_id
        posted = [e for e, _ in await actions(http, base, 9)]
        await reader.wait_count(1 + len(posted), 10)
        live = reader.events[1:]
        assert [r[0] for r in live] == [p["seq"] for p in posted]  # id: is the seq
        assert [r[2] for r in live] == posted  # the same events the data channel carries
    finally:
        await reader.close()
    # Reconnect from the middle: exactly the rest, no duplicates, no loss.
    resume_from = live[3][0]
    resumed = SseReader(http, f"{base}/events", last_id=resume_from)
    try:
        await resumed.wait_count(len(live) - 4, 10)
        more = [e for e, _ in await actions(http, base, 3)]
        await resumed.wait_count(len(live) - 4 + 3, 10)
        assert [r[0] for r in resumed.events] == [r[0] for r in live[4:]] + [m["seq"] for m in more]
    finally:
        await resumed.close()


async def test_bad_card_requests_get_their_status_and_name_the_problem(
    cards_server: Server, http: aiohttp.ClientSession
) -> None:
    base = f"{cards_server.base}/api/streams/limits"
    cases = [
        (card(1, price="12,50"), 422, "price"),
        (card(1, currency="XYZ"), 422, "currency"),
        (card(1, buy_url="javascript:alert(1)"), 422, "buy_url"),
        (card(1, title="x" * 121), 422, "title"),
        (card(1, colour="red"), 422, "colour"),
        ({k: v for k, v in card(1).items() if k != "title"}, 422, "title"),
        (card(1, subtitle="y" * 2100), 413, "limit"),
        ("{not json", 422, "body"),
    ]
    for body, status, word in cases:
        got, text = await post(http, f"{base}/cards", body)
        assert got == status and word in text, (body, got, text)
        assert "\n" not in text.strip()
    assert (await post(http, f"{base}/cards", card(1), token="wrong-token-0123456789"))[0] == 403
    async with http.post(f"{base}/cards", data=json.dumps(card(1))) as res:
        assert res.status == 401
    assert (await post(http, f"{cards_server.base}/api/streams/nope/cards", card(1)))[0] == 404
    assert (await post(http, f"{base}/cards/never-made/show"))[0] == 404
    assert (await post(http, f"{base}/cards", card(5), token=HOST_KEY))[0] == 200  # the host's own key
    statuses = []
    for _ in range(40):  # over 20 per second: the limit answers 429 with Retry-After
        async with http.post(
            f"{base}/cards",
            data=json.dumps(card(2)),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as res:
            statuses.append(res.status)
            if res.status == 429:
                assert int(res.headers["Retry-After"]) >= 1
    assert 429 in statuses and statuses[0] == 200


async def test_cards_survive_a_restart(data_dir: Path, cards_server: Server, http: aiohttp.ClientSession) -> None:
    base = f"{cards_server.base}/api/streams/shop"
    await post_ok(http, f"{base}/cards", card(700))
    await post_ok(http, f"{base}/cards/sku-700/show")
    async with http.get(f"{base}/cards") as res:
        before = await res.json()
    # A second server on the same data directory after the first one stops.
    stop_server(cards_server)
    restarted = start_server(
        ["--config", str(_config(data_dir)), "--data-dir", str(data_dir)], data_dir / "server2.log"
    )
    try:
        async with http.get(f"{restarted.base}/api/streams/shop/cards") as res:
            after = await res.json()
        assert after == before
        assert "sku-700" in {c["id"] for c in after["on_screen"]}
        viewer = WhepViewer(restarted.base, "shop", read_pattern=False)
        await viewer.start(http)
        try:
            await viewer.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 15)
            snapshot = next(m for m in map(json.loads, viewer.record.messages) if m["type"] == "snapshot")
            assert snapshot["cards"] == after["on_screen"] and snapshot["seq"] == after["seq"]
        finally:
            await viewer.stop(http)
    finally:
        assert stop_server(restarted) == 0
        assert "Traceback" not in restarted.log()


async def test_pts_of_an_action_lines_up_with_the_video(data_dir: Path, http: aiohttp.ClientSession) -> None:
    server = start_server(
        ["--config", str(_config(data_dir)), "--data-dir", str(data_dir / "sync")], data_dir / "sync.log"
    )
    publisher = WhipPublisher(server.base, "sync", KEY, width=640, height=360, h264=True, audio=False)
    viewer = WhepViewer(server.base, "sync", rendition="480p")
    try:
        await publisher.start(http)
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30 and any('"clock"' in m for m in r.messages), 15)
        offsets = []
        for n in range(5):
            count = len(viewer.record.frames)
            await viewer.wait_for(lambda r, c=count: len(r.frames) >= c + 10, 5)
            publishing = publisher.video.counter  # the frame being published as we post
            status, text = await post(http, f"{server.base}/api/streams/sync/cards", card(n))
            assert status == 200, text
            pts_ms = json.loads(text)["pts_ms"]
            target = len(viewer.record.frames) + 15
            await viewer.wait_for(lambda r, t=target: len(r.frames) >= t, 5)
            clock = next(m for m in map(json.loads, viewer.record.messages) if m["type"] == "clock")
            frame_pts = [media_ms(clock, viewer.rtp_of(f)) for f in viewer.record.frames]
            nearest = min(range(len(frame_pts)), key=lambda i: abs(frame_pts[i] - pts_ms))
            offsets.append((viewer.record.frames[nearest].counter - publishing) * 1000 / 30)
        print(f"frame at pts_ms vs frame being published: {offsets} ms")
        assert all(abs(o) <= 100 for o in offsets), offsets
    finally:
        await viewer.stop(http)
        await publisher.stop(http)
        assert stop_server(server) == 0


async def test_sse_with_viewer_carries_that_viewers_exact_clock(data_dir: Path, http: aiohttp.ClientSession) -> None:
    server = start_server(
        ["--config", str(_config(data_dir)), "--data-dir", str(data_dir / "sseclock")], data_dir / "sseclock.log"
    )
    publisher = WhipPublisher(server.base, "sync", KEY, width=320, height=180, h264=True, audio=False)
    viewer = WhepViewer(server.base, "sync", data_channel=False, rendition="240p")
    base = f"{server.base}/api/streams/sync/events"
    reader = None
    try:
        await publisher.start(http)
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 5, 15)
        assert viewer.location is not None
        reader = SseReader(http, f"{base}?viewer={viewer.location.rsplit('/', 1)[1]}")
        await reader.wait_count(2, 10)
        (_, name, snapshot), (_, _, clock) = reader.events[:2]
        assert name == "snapshot" and snapshot["clock"] == clock and clock["type"] == "clock"
        # The pair is the first frame this viewer was sent, exactly: every later frame's media
        # time follows from its own RTP timestamp (33 ms apart at 30 fps, never before the first).
        assert clock["rtp"] == viewer.rtp_of(viewer.record.frames[0])
        times = [media_ms(clock, viewer.rtp_of(f)) for f in viewer.record.frames]
        assert times == sorted(times) and times[0] == clock["media_ts"] / 90
        async with http.get(f"{base}?viewer=no-such-session") as res:
            assert res.status == 404
        await viewer.stop(http)  # its viewer gone, the stream ends
        await asyncio.wait_for(reader._task, 10)
    finally:
        if reader is not None:
            await reader.close()
        await viewer.stop(http)
        await publisher.stop(http)
        assert stop_server(server) == 0
        assert "Traceback" not in server.log()


async def test_a_browser_publisher_can_send_card_actions_on_its_data_channel(
    data_dir: Path, http: aiohttp.ClientSession
) -> None:
    server = start_server(
        ["--config", str(_config(data_dir)), "--data-dir", str(data_dir / "pubchannel")],
        data_dir / "publisher-channel.log",
    )
    publisher = WhipPublisher(server.base, "limits", KEY, width=320, height=180, audio=False, control=True)
    viewer = WhepViewer(server.base, "limits", read_pattern=False)
    try:
        await publisher.start(http)
        await viewer.start(http)
        await viewer.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 15)
        assert publisher.channel is not None
        opened = asyncio.Event()
        if publisher.channel.readyState == "open":
            opened.set()
        publisher.channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 10)
        for message in (
            {"action": "upsert", "card": card(77)},
            {"action": "show", "id": "sku-77"},
            {"action": "show", "id": "nope"},
            {"action": "dance"},
        ):
            publisher.replied.clear()
            publisher.channel.send(json.dumps(message))
            await asyncio.wait_for(publisher.replied.wait(), 5)
        replies = [json.loads(r) for r in publisher.replies]
        assert [r.get("action") for r in replies[:2]] == ["update", "show"]
        assert replies[2] == {"type": "error", "status": 404, "reason": "no card 'nope' in this stream's catalogue"}
        assert replies[3]["status"] == 422 and "action" in replies[3]["reason"]
        show_seq = replies[1]["seq"]
        await viewer.wait_for(lambda r: any(f'"seq":{show_seq},' in m for m in r.messages), 5)
    finally:
        await viewer.stop(http)
        await publisher.stop(http)
        assert stop_server(server) == 0
