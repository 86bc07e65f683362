"""WHIP/WHEP protocol details real clients insist on, checked against a running server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import av
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import Server, api, start_server, stop_server, wait_until, write_config
from tests.fixtures import sdp

KEY = "protocol-test-key-0123456789"


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose sessions must connect within 2 s and whose publishers may be silent 2 s."""
    tmp = tmp_path_factory.mktemp("protocol")
    config = write_config(tmp / "livecart.toml", f'[streams.interop]\npublish_key = "{KEY}"\n')
    server = start_server(["--config", str(config), "--setup-timeout", "2", "--media-timeout", "2"], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


def _fixture(name: str) -> str:
    return sdp(name).replace("\r\n", "\n")


@pytest.mark.parametrize(
    "name",
    [
        "obs-offer.sdp",
        "obs-offer-reconstructed.sdp",
        "whip-test-offer.sdp",
        "whip-ffmpeg-offer.sdp",
        "whip-gst-offer.sdp",
        "whip-node-offer.sdp",
    ],
)
async def test_real_client_whip_offers_get_201_with_a_complete_answer(quick_server: Server, name: str) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {KEY}"}
        async with http.post(f"{quick_server.base}/whip/interop", data=_fixture(name), headers=headers) as res:
            answer = await res.text()
            assert res.status == 201, answer
            assert res.headers["Content-Type"].startswith("application/sdp")
            location = res.headers["Location"]
        session = location.rsplit("/", 1)[-1]
        assert location.startswith("/whip/interop/") and len(session) >= 22  # >= 128 random bits
        assert "a=candidate:" in answer and "a=end-of-candidates" in answer
        media = [s for s in answer.split("m=")[1:] if s.startswith(("audio", "video"))]
        assert media and all("a=rtcp-mux-only" in s for s in media)
        # These peers never connect here: the setup deadline must drop them, leaving nothing.
        await wait_until(lambda: _no_sessions(http, quick_server), timeout=10)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("whep-test-offer.sdp", 201),
        ("whep-node-offer.sdp", 201),
        ("whep-gst-offer.sdp", 201),  # offers VP8 only: it gets a VP8 rendition
    ],
)
async def test_real_client_whep_offers(quick_server: Server, name: str, status: int) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": "application/sdp"}
        async with http.post(f"{quick_server.base}/whep/interop", data=_fixture(name), headers=headers) as res:
            body = await res.text()
            assert res.status == status, body
        if status == 201:
            assert ("VP8/90000" in body) == ("gst" in name) and ("H264/90000" in body) != ("gst" in name)
        await wait_until(lambda: _no_sessions(http, quick_server), timeout=10)


async def _no_sessions(http: aiohttp.ClientSession, server: Server) -> bool:
    sessions = (await api(http, server))["sessions"]
    assert isinstance(sessions, dict)
    return sessions["peer_connections"] == 0


async def test_cors_preflight_advertises_sdp(quick_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        async with http.options(f"{quick_server.base}/whip/interop", headers=headers) as res:
            assert res.status in (200, 204)
            assert res.headers["Accept-Post"] == "application/sdp"
            assert res.headers["Access-Control-Allow-Origin"] == "*"
            assert "Authorization" in res.headers["Access-Control-Allow-Headers"]
            assert "Location" in res.headers["Access-Control-Expose-Headers"]


async def test_h264_publisher_like_obs_reaches_viewers_and_takeover_works(quick_server: Server) -> None:
    """OBS sends H.264; a second publisher with the key takes the stream over (OBS reconnect)."""
    async with aiohttp.ClientSession() as http:
        first = WhipPublisher(quick_server.base, "interop", KEY, width=480, height=270, video_codec="H264")
        await first.start(http)
        viewer = WhepViewer(quick_server.base, "interop")
        await viewer.start(http)
        try:
            await viewer.wait_for(lambda r: len(r.frames) >= 20, timeout=15)
            assert {(f.width, f.height) for f in viewer.record.frames} == {(480, 270)}
            second = WhipPublisher(quick_server.base, "interop", KEY, width=320, height=180)
            await second.start(http)
            # The viewer keeps its session and switches to the new publisher's picture.
            await viewer.wait_for(lambda r: r.frames[-1].width == 320, timeout=15)
            assert viewer.record.frames[-1].height == 180
            # The first publisher's session ended moments ago: its DELETE is told so with 200
            # (RFC 9725 asks DELETE to end the session, and it has ended).
            assert await first.stop(http) == 200
            assert await second.stop(http) == 200
            # The viewer stays connected and is told the stream went offline.
            await viewer.wait_for(lambda r: r.got("stream", live=False), timeout=5)
        finally:
            await viewer.stop(http)
        await wait_until(lambda: _no_sessions(http, quick_server), timeout=10)


class SilentTrack(MediaStreamTrack):
    """A video track that never produces a frame: a publisher that connects and goes quiet."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._never = asyncio.Event()

    async def recv(self) -> av.VideoFrame:
        await self._never.wait()
        raise MediaStreamError


async def test_silent_publisher_is_ended_and_its_stream_goes_offline(quick_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SilentTrack(), direction="sendonly")
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {KEY}"}
        async with http.post(f"{quick_server.base}/whip/interop", data=pc.localDescription.sdp, headers=headers) as res:
            assert res.status == 201
            answer = await res.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        try:
            await asyncio.wait_for(connected.wait(), 5)
            # Connected but no frame yet: the stream is held, not live (viewers would see nothing).
            assert await _stream_state(http, quick_server, "interop") == ("connecting", False)
            viewer = WhepViewer(quick_server.base, "interop", read_pattern=False)
            await viewer.start(http)
            try:
                await viewer.wait_for(lambda r: r.got("stream"), 5)
                assert viewer.record.got("stream", state="connecting", live=False), viewer.record.messages
            finally:
                await viewer.stop(http)
            # media_timeout is 2 s: the server ends the session on its own.
            await wait_until(lambda: _no_sessions(http, quick_server), timeout=8)
            assert await _stream_state(http, quick_server, "interop") == ("offline", False)
        finally:
            await pc.close()
    assert "no media for 2 s" in quick_server.log()


async def _stream_state(http: aiohttp.ClientSession, server: Server, name: str) -> tuple[str, bool]:
    async with http.get(f"{server.base}/api/streams/{name}") as res:
        data = await res.json()
    return str(data["state"]), bool(data["live"])


async def test_metrics_parse_and_move_and_healthz_answers(quick_server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async def scrape(http: aiohttp.ClientSession) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with http.get(f"{quick_server.base}/metrics") as res:
            assert res.status == 200
            text = await res.text()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{quick_server.base}/healthz") as res:
            assert res.status == 200
        before = await scrape(http)
        publisher = WhipPublisher(quick_server.base, "interop", KEY, width=320, height=180, audio=False)
        await publisher.start(http)
        viewer = WhepViewer(quick_server.base, "interop", read_pattern=False)
        await viewer.start(http)
        try:
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 15)
            during = await scrape(http)
            assert during[("livecart_viewers", ())] == 1
            assert during[("livecart_stream_live", (("stream", "interop"),))] == 1
            key = ("livecart_encoder_frames_out_total", (("rung", "240p"), ("stream", "interop")))
            assert during[key] > before.get(key, 0)
            assert during[("livecart_http_responses_total", (("status", "201"),))] >= 2
            for counter in ("packets_forwarded", "bytes_forwarded"):
                key = (f"livecart_{counter}_total", (("stream", "interop"),))
                assert during[key] > before.get(key, 0), counter
            assert ("livecart_viewer_loss_ratio", (("stat", "max"), ("stream", "interop"))) in during
            # Viewers are aggregated, never a series per viewer (unbounded cardinality).
            assert not [k for k in during if any(label == "viewer" for label, _ in k[1])]
            assert during[("livecart_viewers_by_feedback", (("feedback", "remb"), ("stream", "interop")))] == 1
            assert during[("livecart_viewer_estimate_bps_gcount", (("stream", "interop"),))] == 1
            inf = ("livecart_viewer_estimate_bps_bucket", (("le", "+Inf"), ("stream", "interop")))
            assert during[inf] == 1
            assert ("livecart_process_cpu_seconds_total", ()) in during or ("process_cpu_seconds_total", ()) in during
        finally:
            await viewer.stop(http)
            await publisher.stop(http)
