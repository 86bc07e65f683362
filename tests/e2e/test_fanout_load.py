"""The fast path under load (issue 6): a bad viewer costs the others nothing; `livecart bench` smoke run."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from benchmarks.benchstats import Mark, window
from benchmarks.loadviewer import LoadViewer
from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, start_server, stop_server, wait_until, write_config

CROWD = """
[streams.crowd]
publish_key = "{key}"
max_viewers = 40

[[streams.crowd.ladder]]
name = "360p"
width = 640
height = 360
kbps = 1200
"""


@pytest.fixture(scope="module")
def crowd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("crowd")
    config = write_config(tmp / "livecart.toml", CROWD.format(key=PUBLISH_KEY))
    srv = start_server(["--config", str(config)], tmp / "server.log")
    yield srv
    code = stop_server(srv)
    log = srv.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-5000:]


def _marks(viewer: LoadViewer) -> dict[int, tuple[bool, Mark]]:
    assert viewer.counter is not None
    return {ssrc: (s.video, s.mark()) for ssrc, s in viewer.counter.streams.items()}


def _received(viewer: LoadViewer) -> int:
    assert viewer.counter is not None
    return sum(s.count for s in viewer.counter.streams.values())


@pytest.mark.parametrize("trouble", ["stops reading", "vanishes"])
async def test_a_viewer_that_stops_reading_or_vanishes_costs_the_other_19_nothing(
    crowd_server: Server, trouble: str
) -> None:
    base = crowd_server.base
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(base, "crowd", PUBLISH_KEY, width=640, height=360, h264=True)
        await publisher.start(http)
        viewers = [LoadViewer(base, "crowd", rendition=None) for _ in range(20)]
        try:
            await asyncio.gather(*(v.join(http, 15) for v in viewers))
            await wait_until(_all_have_keyframes(viewers), 15)
            bad, healthy = viewers[0], viewers[1:]
            transport = bad.ice_transport()
            if trouble == "stops reading":
                transport.pause_reading()  # its socket buffer fills; nobody reads it
            else:
                transport.close()  # gone: no DELETE, no DTLS close, the socket is simply closed
            start = {id(v): _marks(v) for v in healthy}
            bad_start = _marks(bad)
            counts = [_received(v) for v in healthy]
            loop = asyncio.get_running_loop()
            began = loop.time()

            async def enough() -> bool:  # ~3 s of media each: the bad socket overflowed long ago
                return all(_received(v) - c >= 1000 for v, c in zip(healthy, counts, strict=True))

            await wait_until(enough, 30)
            wall = loop.time() - began
            for viewer in healthy:
                assert viewer.counter is not None
                for ssrc, stream in viewer.counter.streams.items():
                    video, begin = start[id(viewer)][ssrc]
                    got = window(video, begin, stream.mark(), wall)
                    assert got.received == got.seq_span, f"viewer lost {got.seq_span - got.received} packets"
                    assert got.media_s > wall - 0.5  # and never fell behind
            if trouble == "stops reading":
                # Prove it really stalled: once it reads again it finds far fewer packets than were sent.
                transport.resume_reading()
                await wait_until(_got_more(bad), 10)
                assert bad.counter is not None
                lost = 0
                for ssrc, stream in bad.counter.streams.items():
                    got = window(stream.video, bad_start[ssrc][1], stream.mark(), wall)
                    lost += got.seq_span - got.received
                assert lost > 100
        finally:
            await asyncio.gather(*(v.leave(http) for v in viewers), return_exceptions=True)
            await publisher.stop(http)


def _all_have_keyframes(viewers: list[LoadViewer]) -> object:
    async def check() -> bool:
        return all(
            v.counter is not None and v.counter.first_keyframe_at is not None and len(v.counter.streams) == 2
            for v in viewers
        )  # video from a keyframe on, and audio

    return check


def _got_more(viewer: LoadViewer) -> object:
    """Until the viewer has read what its socket kept while it did not read (a few hundred
    packets at most) and live packets after them, past the gap."""
    before = _received(viewer)

    async def check() -> bool:
        return _received(viewer) > before + 400

    return check


async def test_bench_smoke_run_delivers_to_20_viewers(crowd_server: Server, tmp_path: Path) -> None:
    """`livecart bench` as a user runs it: 20 viewers for 10 s, JSON with the documented keys."""
    out = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "relay.cli", "bench",
        "--target", crowd_server.base, "--stream", "crowd", "--key", PUBLISH_KEY,
        "--viewers", "20", "--ramp", "20", "--duration", "10", "--workers", "2", "--json", str(out),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    report = json.loads(out.read_text())
    for key in (
        "viewers_connected", "viewers_failed", "failures", "join_ms_p50", "join_ms_p95", "join_ms_p99",
        "delivered_ratio_min", "delivered_ratio_median", "packets_per_s", "video_latency_ms_p50",
        "video_latency_ms_p99", "card_latency_ms_p50", "card_latency_ms_p99", "server_cpu_pct", "client_cpu_pct",
    ):  # fmt: skip
        assert key in report, key
    assert report["viewers_connected"] == 20 and report["viewers_failed"] == 0, report["failures"]
    # The ratio also counts a stream that runs late against the wall clock (benchstats), so on a
    # loaded 2-core CI box it reads below what the fan-out delivers (0.963 once, 1.0 on a quiet
    # machine); packet loss in the fan-out itself is asserted packet by packet in the tests above.
    assert report["delivered_ratio_min"] >= 0.9
    assert report["packets_verified"] > 0 and report["packets_verify_failed"] == 0
    assert report["video_latency_ms_p50"] is not None and report["video_latency_ms_p50"] < 1000
    assert report["card_latency_ms_p50"] is not None  # the probes saw the cards the publisher posted
    assert 0 < report["server_cpu_pct"] and 0 < report["client_cpu_pct"]


def _drop_video_packets(viewer: WhepViewer, every: int) -> list[int]:
    """Make a real aiortc viewer lose one video RTP packet in ``every`` before aiortc sees it."""
    dtls = viewer.pc.getTransceivers()[0].receiver.transport
    pair = dtls.transport._connection._nominated[1]
    protocol = pair.protocol
    original = protocol.datagram_received
    seen = [0]
    dropped: list[int] = []

    def lossy(data: bytes, addr: tuple[str, int]) -> None:
        if data and 127 < data[0] < 192 and not 192 <= data[1] <= 223 and len(data) > 400:  # video-sized RTP
            seen[0] += 1
            if seen[0] % every == 0:
                dropped.append(int.from_bytes(data[2:4], "big"))
                return
        original(data, addr)

    protocol.datagram_received = lossy
    return dropped


async def test_lost_packets_are_resent_from_history_and_the_picture_never_freezes(crowd_server: Server) -> None:
    """A viewer losing 1 video packet in 10 gets each one again on NACK, re-protected for it."""
    base = crowd_server.base
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(base, "crowd", PUBLISH_KEY, width=640, height=360, h264=True)
        await publisher.start(http)
        viewer = WhepViewer(base, "crowd", data_channel=False)
        try:
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 15)
            before = await _stream_counter(http, base, "packets_retransmitted")
            dropped = _drop_video_packets(viewer, every=10)
            start = len(viewer.record.frames)
            await viewer.wait_for(lambda r: len(r.frames) >= start + 150, 20)  # ~5 s of video
            assert len(dropped) >= 10
            resent = await _stream_counter(http, base, "packets_retransmitted") - before
            assert resent >= len(dropped) * 0.8, (resent, len(dropped))
            assert await _stream_counter(http, base, "packets_nacked") >= resent
            async with http.get(f"{base}/metrics") as res:
                metrics = await res.text()
            assert 'livecart_packets_retransmitted_total{stream="crowd"}' in metrics
            frames = viewer.record.frames[start:]
            gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
            assert max(gaps) < 0.5  # each loss was repaired in time: no freeze
            counters = [f.counter for f in frames]
            assert counters == sorted(counters)  # the publisher's frames, in order
        finally:
            await viewer.stop(http)
            await publisher.stop(http)


async def _stream_counter(http: aiohttp.ClientSession, base: str, key: str) -> int:
    async with http.get(f"{base}/api/streams/crowd") as res:
        data = await res.json()
    return int(data[key])


async def test_bench_measures_a_stream_that_is_already_live(crowd_server: Server, tmp_path: Path) -> None:
    """`--publish none`: no publisher of its own, no cards; the viewers still get everything."""
    out = tmp_path / "bench.json"
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(crowd_server.base, "crowd", PUBLISH_KEY, width=640, height=360, h264=True)
        await publisher.start(http)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relay.cli", "bench", "--target", crowd_server.base, "--stream", "crowd",
                "--publish", "none", "--viewers", "5", "--duration", "3", "--probes", "0", "--workers", "1",
                "--json", str(out), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, stderr = await asyncio.wait_for(process.communicate(), 90)
        finally:
            await publisher.stop(http)
    assert process.returncode == 0, stderr.decode()[-3000:]
    report = json.loads(out.read_text())
    assert report["viewers_connected"] == 5 and report["delivered_ratio_min"] >= 0.99
    assert report["card_latency_ms_p50"] is None and report["video_latency_ms_p50"] is None  # no probes, no cards


async def test_bench_with_conversation_counts_every_tap_and_prices_it_against_video_alone(
    crowd_server: Server, tmp_path: Path
) -> None:
    """`--comment-rate/--like-rate` with `--video-baseline`: the same level twice, the taps exact."""
    out = tmp_path / "bench.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay.cli", "bench", "--target", crowd_server.base, "--stream", "crowd",
        "--key", PUBLISH_KEY, "--viewers", "10", "--duration", "5", "--workers", "1", "--probes", "0",
        "--comment-rate", "0.3", "--like-rate", "2", "--video-baseline", "--json", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 150)
    assert process.returncode == 0, stderr.decode()[-3000:]
    report = json.loads(out.read_text())
    video, talking = report["levels"]
    assert not video["talk_level"] and "talk" not in video and talking["talk_level"]
    talk = talking["talk"]
    assert talk["comments_sent"] >= 3 and talk["comments_echoed"] + sum(talk["comments_refused"].values()) == (
        talk["comments_sent"]
    )
    assert talk["display_received"] > 0  # the others' comments reached the viewers
    assert talk["taps_sent"] > 0 and talk["like_total_server_delta"] == talk["taps_sent"]  # exact
    (cost,) = report["conversation_cost"]
    assert cost["viewers"] == 10 and cost["video_cpu_pct"] > 0 and cost["talk_cpu_pct"] > 0
