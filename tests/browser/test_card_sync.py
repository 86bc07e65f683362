"""Cards land on their frame in the watch page, measured in Chromium (issue 17).

A frame-counter publisher (``WhipPublisher``: frame n carries n in its top band) and a reference
aiortc viewer, whose decoded frames and ``clock`` give each counter's media time. The page under
test is the real watch page; a MutationObserver in it draws the video to a canvas the moment a
card element is added and reads the counter on screen (``read_counter`` of
``benchmarks/pattern.py``, ported below). A card whose ``pts_ms`` is P targets the first counter
whose media time is at or after P; the test measures how many frames after (or before) its
target each card appeared, over joins with a fresh keyframe, joins from the cached frames, a
rung switch, the SSE fallback and a reconnect after the publisher restarted.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.browser.conftest import KEY
from tests.e2e.conftest import Server, start_server, stop_server, write_config

STREAM = "sync"
FRAME_MS = 1000 / 30
# Every wait on the page polls on a timer: Playwright's default polls on every animation frame,
# and with the frame rate unthrottled (below) that is a busy loop in the page, which on 2 cores
# made Chromium skip presenting video frames (what the card show records happens in the page,
# so how soon the test notices it does not matter).
POLL_MS = 50

# Runs before the page's own scripts: records the counter on screen whenever a card is added,
# and the size of the first frame presented.
OBSERVER = """
(() => {
  const BITS = 16;
  const shows = [];
  window.__cardSync = { shows, firstFrame: null };
  // read_counter (benchmarks/pattern.py) on the counter's band: the mean of each block's middle.
  // Only that band is copied out of the video, into a canvas kept at its size: a full frame's
  // readback on every presented frame cost enough on 2 cores to make Chromium skip frames.
  function readCounter(data, width, band) {
    const block = Math.floor(width / BITS);
    const top = Math.floor(band / 4);
    const bottom = Math.max(top + 1, Math.floor((3 * band) / 4));
    let value = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const left = bit * block + Math.floor(block / 4);
      const right = Math.max(left + 1, (bit + 1) * block - Math.floor(block / 4));
      let sum = 0;
      for (let y = top; y < bottom; y++) {
        for (let x = left; x < right; x++) {
          const i = (y * width + x) * 4;
          sum += (data[i] + data[i + 1] + data[i + 2]) / 3;
        }
      }
      value = (value << 1) | (sum / ((bottom - top) * (right - left)) > 128 ? 1 : 0);
    }
    return value;
  }
  document.addEventListener("DOMContentLoaded", () => {
    const video = document.getElementById("video");
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const onScreen = () => {
      const width = video.videoWidth;
      const band = Math.max(2, Math.floor(video.videoHeight * 0.125));
      if (canvas.width !== width || canvas.height !== band) {
        canvas.width = width;
        canvas.height = band;
      }
      ctx.drawImage(video, 0, 0, width, band, 0, 0, width, band);
      return readCounter(ctx.getImageData(0, 0, width, band).data, width, band);
    };
    // Every frame Chromium presents (it does not present every frame it decodes).
    const presented = [];
    window.__cardSync.presented = presented;
    const onFrame = (_now, meta) => {
      if (!window.__cardSync.firstFrame) window.__cardSync.firstFrame = { width: meta.width, height: meta.height };
      presented.push(onScreen());
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (!(node instanceof HTMLElement) || !node.classList.contains("card")) continue;
          shows.push({ id: node.dataset.id, counter: onScreen() });
        }
      }
    }).observe(document.getElementById("cards"), { childList: true });
  });
})();
"""
NO_DATA_CHANNEL = """
RTCPeerConnection.prototype.createDataChannel = function () { throw new DOMException("no SCTP here"); };
"""


@dataclass
class Show:
    page: str
    card: str
    pts_ms: int
    counter: int = -1
    target: int = -1
    presented_target: int = -1  # the first frame at or after the target that Chromium presented
    presented_next: int = -1  # the frame it presented after that one

    @property
    def frames_late(self) -> int:
        return self.counter - self.target


class Reference:
    """Each counter's media time (90 kHz ticks), from an aiortc viewer and its clock messages."""

    def __init__(self, viewer: WhepViewer) -> None:
        self.viewer = viewer

    def ticks(self) -> dict[int, int]:
        clocks = [m for m in map(json.loads, self.viewer.record.messages) if m["type"] == "clock"]
        out: dict[int, int] = {}
        for frame in self.viewer.record.frames:
            rtp = self.viewer.rtp_of(frame)
            for clock in reversed(clocks):
                delta = (rtp - clock["rtp"]) % 2**32
                if delta < 2**31:
                    out.setdefault(frame.counter, clock["media_ts"] + delta)
                    break
        return out

    async def frames(self, count: int) -> None:
        """Wait until the reference has decoded ``count`` more frames (the stream moves on)."""
        have = len(self.viewer.record.frames)
        await self.viewer.wait_for(lambda r: len(r.frames) >= have + count, 10)

    def judge(self, show: Show) -> None:
        ticks = self.ticks()
        due = [c for c, t in ticks.items() if t >= show.pts_ms * 90]
        assert due, f"the reference has no frame at or after {show.pts_ms} ms yet"
        show.target = min(due, key=lambda c: ticks[c])

    def frames_after(self, show: Show) -> int:
        """Frames of the stream between the card's target and the frame it appeared on: the
        publisher's counter can skip a number when it falls behind, the stream's frames do not."""
        ticks = self.ticks()
        if show.counter not in ticks or show.target not in ticks:
            return show.frames_late
        return sum(1 for t in ticks.values() if ticks[show.target] < t <= ticks[show.counter])

    def late_ms(self, show: Show) -> float:
        ticks = self.ticks()
        if show.counter in ticks and show.target in ticks:
            return (ticks[show.counter] - ticks[show.target]) / 90
        return show.frames_late * FRAME_MS


@pytest.fixture
def chromium_args() -> list[str]:
    # Headless Chromium composites at a fixed 60 Hz tied to a virtual vsync and, on a busy machine,
    # skips presenting decoded frames; unthrottled, it presents every frame it decodes in time,
    # so what is measured is the player, not the compositor's schedule.
    return ["--disable-gpu-vsync", "--disable-frame-rate-limit"]


@pytest.fixture(scope="module")
def sync_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("card-sync")
    # A one-second join window and 4 s GOPs: joins from the cached frames are then common (and
    # their bursts long, the case where Chromium presents only part of what it decodes), and
    # a join more than a second after a keyframe gets a fresh one.
    config = write_config(
        tmp / "livecart.toml",
        f'[streams.{STREAM}]\npublish_key = "{KEY}"\n[transcode]\ngop_s = 4.0\nkeyframe_min_interval_ms = 1000\n'
        # LL-HLS puts a keyframe on every rung each 2 s whatever gop_s says: off, so GOPs are 4 s.
        "[hls]\nenabled = false\n",
    )
    server = start_server(["--config", str(config), "--data-dir", str(tmp / "data")], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        yield session


async def _join_requests(http: aiohttp.ClientSession, server: Server) -> int:
    async with http.get(f"{server.base}/api/streams/{STREAM}") as res:
        return int((await res.json())["join_keyframe_requests"])


async def _card(http: aiohttp.ClientSession, server: Server, card_id: str, action: str) -> int:
    base = f"{server.base}/api/streams/{STREAM}/cards"
    if action == "create":
        body = {
            "id": card_id,
            "title": f"Product {card_id}",
            "price": "9.99",
            "currency": "EUR",
            "image_url": "/static/product.svg",
            "buy_url": "https://shop.example/p",
        }
        async with http.post(base, json=body) as res:
            assert res.status == 200, await res.text()
            return int((await res.json())["pts_ms"])
    async with http.post(f"{base}/{card_id}/{action}") as res:
        assert res.status == 200, await res.text()
        return int((await res.json())["pts_ms"])


class Sync:
    """One test's publisher, reference and card shows."""

    def __init__(self, browser: Any, server: Server, http: aiohttp.ClientSession, ref: Reference) -> None:
        self.browser, self.server, self.http, self.ref = browser, server, http, ref
        self.shows: list[Show] = []
        self.joins: dict[str, str] = {}

    async def open(
        self, name: str, query: str, *, sse: bool = False, before_join: Callable[[], Awaitable[None]] | None = None
    ) -> Any:
        """Load the player; ``before_join`` runs while its WHEP offer is held, just before the join."""
        context = await self.browser.new_context()
        await context.add_init_script(OBSERVER + (NO_DATA_CHANNEL if sse else ""))
        page = await context.new_page()
        before = await _join_requests(self.http, self.server)
        if before_join is not None:
            prepare = before_join

            async def hold_offer(route: Any) -> None:
                nonlocal before, prepare
                if route.request.method == "POST" and prepare is not None:
                    await prepare()
                    prepare = None
                    before = await _join_requests(self.http, self.server)
                await route.continue_()

            await page.route("**/whep/**", hold_offer)
        await page.goto(f"{self.server.base}/watch/{STREAM}{query}")
        await page.wait_for_function("document.getElementById('video').videoWidth > 0", polling=POLL_MS, timeout=15000)
        asked = await _join_requests(self.http, self.server) - before
        self.joins[name] = "fresh keyframe" if asked else "cached frames"
        # Chromium skips frames while its playout settles after a join (it presented frames
        # 55 and 109 but not 53 and 105, targets in one run): a card cannot land on a frame
        # never shown, so cards start once a second of video has been presented.
        await page.wait_for_function("window.__cardSync.presented.length >= 90", polling=POLL_MS, timeout=15000)
        return page

    async def show_cards(self, page: Any, name: str, count: int) -> None:
        for i in range(count):
            card_id = f"{name}-{len(self.shows)}"
            await _card(self.http, self.server, card_id, "create")
            show = Show(name, card_id, await _card(self.http, self.server, card_id, "show"))
            await page.wait_for_function(
                f"window.__cardSync.shows.some((s) => s.id === {json.dumps(card_id)})", polling=POLL_MS, timeout=5000
            )
            recorded = await page.evaluate(f"window.__cardSync.shows.find((s) => s.id === {json.dumps(card_id)})")
            show.counter = int(recorded["counter"])
            await _card(self.http, self.server, card_id, "hide")
            await self.ref.frames(5 + 4 * i)  # the next show at another phase of the frame clock
            self.ref.judge(show)
            presented = [c for c in await page.evaluate("window.__cardSync.presented") if c >= show.target]
            show.presented_target, show.presented_next = [*presented, -1, -1][:2]
            self.shows.append(show)


@pytest.mark.timeout(300)
async def test_every_card_appears_on_its_frame_for_every_kind_of_viewer(
    browser: Any, sync_server: Server, http: aiohttp.ClientSession
) -> None:
    publisher = WhipPublisher(sync_server.base, STREAM, KEY, width=640, height=360, h264=True, audio=False)
    reference = WhepViewer(sync_server.base, STREAM, rendition="240p", audio=False)
    helper: WhepViewer | None = None
    second: WhipPublisher | None = None
    try:
        await publisher.start(http)
        await reference.start(http)
        await reference.wait_for(lambda r: len(r.frames) >= 30, 20)
        ref = Reference(reference)
        sync = Sync(browser, sync_server, http, ref)

        # 1. A join that needs a fresh keyframe (480p; the last join was long enough ago).
        page = await sync.open("fresh", "?rendition=480p")
        await sync.show_cards(page, "fresh", 3)
        await page.context.close()

        # 2. A join from the cached frames: another viewer made 480p's keyframe moments ago. It
        # joins while the page's offer is held, so loading the page (over a second on a busy
        # machine) does not age that keyframe out of the one-second join window.

        async def helper_joins() -> None:
            """A viewer whose join makes a fresh 480p keyframe. One that lands within a second
            of the GOP's own keyframe is served from the cache and makes none (the page's join a
            moment later could then be past the window): it leaves, and another joins once
            more than a second of frames has gone by."""
            nonlocal helper
            for _ in range(3):
                before = await _join_requests(http, sync_server)
                helper = WhepViewer(sync_server.base, STREAM, rendition="480p", audio=False, read_pattern=False)
                await helper.start(http)
                await helper.wait_for(lambda r: len(r.frames) >= 1, 10)
                if await _join_requests(http, sync_server) > before:
                    return
                await helper.stop(http)
                helper = None
                await ref.frames(40)
            raise AssertionError("three helper joins in a row were served from the cache")

        page = await sync.open("cached", "?rendition=480p", before_join=helper_joins)
        await sync.show_cards(page, "cached", 3)
        await page.context.close()

        # 3. ?rendition=240p plays 240p from its first frame; then switches to 480p and back (a
        # switch retimes the viewer when the new rung's keyframe is not later than what the old
        # rung already sent it).
        page = await sync.open("switch", "?rendition=240p")
        assert await page.evaluate("window.__cardSync.firstFrame") == {"width": 426, "height": 240}
        assert await page.evaluate("document.getElementById('rendition').value") == "240p"
        await page.wait_for_function(
            "document.getElementById('current').dataset.rung === '240p'", polling=POLL_MS, timeout=5000
        )
        await sync.show_cards(page, "switch-start", 2)
        await page.wait_for_function(
            "document.getElementById('rendition').options.length > 2", polling=POLL_MS, timeout=10000
        )
        retimes = []
        for rung, height, count in (("480p", 360, 3), ("240p", 240, 2)):
            known = len(await page.evaluate("window.livecartPlayer.mappings"))
            await page.select_option("#rendition", rung)
            await page.wait_for_function(
                f"window.livecartPlayer.mappings.length > {known}", polling=POLL_MS, timeout=10000
            )
            await page.wait_for_function(
                f"document.getElementById('video').videoHeight === {height}", polling=POLL_MS, timeout=10000
            )
            before, after = (await page.evaluate("window.livecartPlayer.mappings"))[-2:]
            retimes.append((rung, (after["rtp"] - after["media_ts"] - before["rtp"] + before["media_ts"]) % 2**32))
            await sync.show_cards(page, f"switch-{rung}", count)
        print(f"RTP offset moved on by (ticks) at each switch: {retimes}")
        await page.context.close()

        # 4. The SSE fallback: no data channel, cards and this session's clock over SSE.
        page = await sync.open("sse", "?rendition=480p", sse=True)
        session = await page.evaluate("window.livecartPlayer.session")
        await page.wait_for_function("window.livecartPlayer.mappings.length >= 1", polling=POLL_MS, timeout=10000)
        await sync.show_cards(page, "sse", 3)
        assert await page.evaluate("window.livecartPlayer.session") == session
        await page.context.close()

        # 5. The publisher restarts; the page's session is ended meanwhile, so it reconnects
        # (a new session, a new clock) and cards after the restart still land on their frames.
        page = await sync.open("restart", "?rendition=240p")
        await sync.show_cards(page, "before-restart", 1)
        first_session = await page.evaluate("window.livecartPlayer.session")
        await publisher.stop(http)
        await page.wait_for_function(
            "document.getElementById('status').dataset.state === 'offline'", polling=POLL_MS, timeout=15000
        )
        async with http.delete(f"{sync_server.base}/whep/{STREAM}/{first_session}") as res:
            assert res.status == 200
        # Counters from 20000 on, so the two publishers' frames never share a counter.
        second = WhipPublisher(
            sync_server.base, STREAM, KEY, width=640, height=360, h264=True, audio=False, stamp=lambda n: n + 20000
        )
        await second.start(http)
        await page.wait_for_function(
            f"window.livecartPlayer.session && window.livecartPlayer.session !== {json.dumps(first_session)}",
            polling=POLL_MS,
            timeout=20000,
        )
        await page.wait_for_function(
            "document.getElementById('status').dataset.state === 'playing'", polling=POLL_MS, timeout=15000
        )
        await reference.wait_for(lambda r: any(f.counter > 20000 for f in r.frames), 15)
        await sync.show_cards(page, "after-restart", 3)
        await page.context.close()

        late = [ref.frames_after(s) for s in sync.shows]
        skipped = sum((s.presented_target, s.presented_next) != (s.target, s.target + 1) for s in sync.shows)
        late_ms = sorted(ref.late_ms(s) for s in sync.shows)
        print(f"joins: {sync.joins}")
        async with http.get(f"{sync_server.base}/api/streams/{STREAM}") as res:
            rungs = (await res.json())["rungs"]
        print("rung frames in/out/dropped by the server: " + ", ".join(
            f"{r['name']} {r['frames_in']}/{r['frames_out']}/{r['frames_dropped']}" for r in rungs
        ))  # fmt: skip
        print(
            f"{len(sync.shows)} card shows on 5 page loads: stream frames late {sorted(late)}; "
            f"ms late min/median/max {late_ms[0]:.0f} / {statistics.median(late_ms):.0f} / {late_ms[-1]:.0f}; "
            f"{skipped} with Chromium skipping its frame or the next"
        )
        for show in sync.shows:
            print(
                f"  {show.page:14} {show.card:18} pts {show.pts_ms} target {show.target} "
                f"first presented {show.presented_target} card on {show.counter}"
            )
        assert set(sync.joins.values()) == {"fresh keyframe", "cached frames"}, sync.joins
        for show in sync.shows:
            # Never early; on the first frame at or after its target that Chromium presented, or
            # (when the card's message arrived just after that frame) the next one. (drawImage
            # can read a frame newer than the one presented, never an older one: 255 read with
            # the card, 256 read twice in the frame callbacks, in one run.)
            assert show.counter >= show.target, show
            assert show.counter <= max(show.presented_next, show.target + 1), show
            if (show.presented_target, show.presented_next) == (show.target, show.target + 1):
                assert show.frames_late <= 1, show  # Chromium presented its frame and the next
    finally:
        for viewer in (helper, reference):
            if viewer is not None:
                await viewer.stop(http)
        for pub in (publisher, second):
            if pub is not None:
                await pub.stop(http, delete=False)
