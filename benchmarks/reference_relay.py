"""The reference relay ``livecart bench --against-reference`` measures LiveCart against.

Built the straightforward aiortc way, as the aiortc examples suggest: a WHIP publisher's video is
decoded by aiortc, encoded once (one 720p H.264 rung, LiveCart's own encoder settings) and its
audio once as Opus; the pre-encoded packets go through ``MediaRelay`` to one ``RTCRtpSender`` per
WHEP viewer, which packetises, protects and sends them through its own coroutine chain. Same
work upstream of the fan-out as LiveCart with a one-rung ladder, so the difference measured is
the fan-out. Not a product: no auth, no limits, one stream.

    python -m benchmarks.reference_relay --port 8090 [--kbps 2500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from fractions import Fraction
from typing import Any

import av
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from transcode.encoder import AudioEncoder, VideoEncoder
from transcode.frames import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ
from transcode.rendition import Rendition


class PacketSource(MediaStreamTrack):
    """A track whose ``recv()`` returns pre-encoded ``av.Packet``s (aiortc then only packetises)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[av.Packet[Any]] = asyncio.Queue(maxsize=100)

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        return await self.queue.get()

    def push(self, data: bytes, pts: int, clock_hz: int) -> None:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = Fraction(1, clock_hz)
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(packet)


class Reference:
    def __init__(self, kbps: int) -> None:
        self.rendition = Rendition("720p", 1280, 720, kbps, 30, 60)
        self.video = PacketSource("video")
        self.audio = PacketSource("audio")
        self.relay = MediaRelay()
        self.peers: dict[str, RTCPeerConnection] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0 = time.monotonic()

    def _media_time(self) -> float:
        return time.monotonic() - self.t0

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        encoder = VideoEncoder(self.rendition)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                pts = round(self._media_time() * VIDEO_CLOCK_HZ)
                for out in await loop.run_in_executor(None, encoder.encode, frame, pts, False):
                    self.video.push(out.data, out.pts, VIDEO_CLOCK_HZ)

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        encoder = AudioEncoder()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                for out in encoder.encode(frame, round(self._media_time() * AUDIO_CLOCK_HZ)):
                    self.audio.push(out.data, out.pts, AUDIO_CLOCK_HZ)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def whip(self, request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            self._spawn(self._pump_video(track) if track.kind == "video" else self._pump_audio(track))

        return await self._answer(request, pc, "whip")

    async def whep(self, request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        video = pc.addTransceiver(self.relay.subscribe(self.video), direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in codecs if c.mimeType in ("video/H264", "video/rtx")])
        offer = await request.text()
        if "m=audio" in offer:
            pc.addTransceiver(self.relay.subscribe(self.audio), direction="sendonly")
        return await self._answer(request, pc, "whep", offer)

    async def _answer(
        self, request: web.Request, pc: RTCPeerConnection, kind: str, offer: str | None = None
    ) -> web.Response:
        if offer is None:
            offer = await request.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        session = secrets.token_urlsafe(16)
        self.peers[session] = pc

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(session)

        location = f"/{kind}/{request.match_info['stream']}/{session}"
        return web.Response(
            status=201, text=pc.localDescription.sdp, content_type="application/sdp", headers={"Location": location}
        )

    async def _close(self, session: str) -> None:
        pc = self.peers.pop(session, None)
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    async def delete(self, request: web.Request) -> web.Response:
        await self._close(request.match_info["session"])
        return web.Response(status=200)


async def serve(port: int, kbps: int) -> None:
    ref = Reference(kbps)
    app = web.Application()
    app.router.add_post("/whip/{stream}", ref.whip)
    app.router.add_post("/whep/{stream}", ref.whep)
    app.router.add_delete("/whip/{stream}/{session}", ref.delete)
    app.router.add_delete("/whep/{stream}/{session}", ref.delete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="plain aiortc relay (MediaRelay + RTCRtpSender per viewer)")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--kbps", type=int, default=2500)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.kbps))


if __name__ == "__main__":
    main()
