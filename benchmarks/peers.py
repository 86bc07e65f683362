"""aiortc client peers that talk to a LiveCart server like any user: a WHIP publisher and a
WHEP viewer. Used by the end-to-end tests and the benchmark client.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci
from yarl import URL

from benchmarks.pattern import draw_counter, read_counter
from relay.messages import split_together as unbatch


class PatternVideoTrack(VideoStreamTrack):
    """Synthetic video: a moving gradient with the frame counter drawn as blocks."""

    def __init__(self, width: int = 640, height: int = 360, *, grain: bool = False) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.counter = 0
        self._base = np.tile(np.arange(width, dtype=np.uint16), (height, 1))
        # Grain makes every frame several packets (a flat pattern encodes to about one), so a
        # lossy link has packets to lose inside frames, as a camera's would.
        rng = np.random.default_rng(3)
        self._grain = [rng.integers(0, 24, (height, width), dtype=np.uint16) for _ in range(4)] if grain else []

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.counter += 1
        yuv = np.full((self.height * 3 // 2, self.width), 128, dtype=np.uint8)
        luma = yuv[: self.height]
        plane = (self._base + self.counter * 4) % 200 + 28
        if self._grain:
            plane = plane + self._grain[self.counter % len(self._grain)]
        luma[:] = plane.astype(np.uint8)
        draw_counter(luma, self.counter)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class NoisyH264Track(MediaStreamTrack):
    """Camera-like video pre-encoded as H.264 at a high bitrate: a moving gradient and box with
    grain noise and the frame counter. The server's re-encode then sees real detail, so its
    rungs run at their target bitrates (a flat pattern would not).
    """

    kind = "video"

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        *,
        fps: int = 30,
        kbps: int = 8000,
        noise: bool = True,
        stamp: Callable[[int], int] | None = None,
        profile: str = "baseline",
    ) -> None:
        super().__init__()
        self._stamp = stamp  # what to draw into frame n (default: n); the benchmark draws capture time
        self._with_noise = noise
        self.width, self.height, self.fps = width, height, fps
        self.counter = 0
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(1, 90000)
        ctx.framerate = fractions.Fraction(fps, 1)
        ctx.bit_rate = kbps * 1000
        ctx.gop_size = fps
        ctx.max_b_frames = 0
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": profile,
            "x264-params": "repeat-headers=1",
        }
        ctx.open()
        self._ctx = ctx
        rng = np.random.default_rng(7)
        self._noise = [rng.integers(-24, 24, (height, width), dtype=np.int16) for _ in range(8)]
        self._ramp = np.tile(np.arange(width, dtype=np.int16) % 200, (height, 1))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="noisy-h264")
        self._started: float | None = None

    def _encode(self, n: int) -> av.Packet[Any]:
        luma = (self._ramp + n * 3) % 200 + 28
        if self._with_noise:
            luma += self._noise[n % len(self._noise)]
        box = (n * 7) % max(1, self.width - 200)
        luma[self.height // 3 : self.height // 3 + 150, box : box + 200] += 60
        yuv = np.full((self.height * 3 // 2, self.width), 128, dtype=np.uint8)
        yuv[: self.height] = np.clip(luma, 0, 255).astype(np.uint8)
        draw_counter(yuv[: self.height], self._stamp(n) if self._stamp else n)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = n * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        packets = self._ctx.encode(frame)
        return packets[0]

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        self.counter += 1
        # Pace to real time (this is the camera's clock, not synchronisation).
        await asyncio.sleep(max(0.0, self._started + self.counter / self.fps - loop.time()))
        return await loop.run_in_executor(self._pool, self._encode, self.counter)

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False)


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone (aiortc's AudioStreamTrack sends silence)."""

    def __init__(self) -> None:
        super().__init__()
        self._phase = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paced 20 ms of silence (aiortc makes it at 8 kHz)
        assert isinstance(frame, av.AudioFrame)
        scale = 48000 // frame.sample_rate
        samples = frame.samples * scale  # the same 20 ms at 48 kHz
        t = (np.arange(samples) + self._phase) / 48000
        self._phase += samples
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        out.sample_rate = 48000
        out.pts = (frame.pts or 0) * scale
        out.time_base = fractions.Fraction(1, 48000)
        return out


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _post_sdp(session: aiohttp.ClientSession, url: str, sdp: str, token: str | None) -> tuple[str, str]:
    headers = {"Content-Type": "application/sdp"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.post(url, data=sdp, headers=headers) as res:
        body = await res.text()
        if res.status != 201:
            raise RuntimeError(f"POST {url} -> {res.status}: {body.strip()}")
        location = res.headers["Location"]
    return str(res.url.join(URL(location))), body


class WhipPublisher:
    """Publishes a pattern video (and a tone) to ``{base}/whip/{stream}``."""

    def __init__(
        self,
        base: str,
        stream: str,
        key: str,
        *,
        width: int = 640,
        height: int = 360,
        audio: bool = True,
        video_codec: str | None = None,
        noisy: bool = False,
        h264: bool = False,
        control: bool = False,
        stamp: Callable[[int], int] | None = None,
        h264_profile: str = "baseline",
        offer_profile_level_id: str | None = None,
        grain: bool = False,
    ) -> None:
        self.offer_profile_level_id = offer_profile_level_id  # claim this H.264 profile in the offer
        self.url = f"{base}/whip/{stream}"
        self.key = key
        self.video: PatternVideoTrack | NoisyH264Track
        if noisy or h264:
            # Pre-encoded with x264 ultrafast: far cheaper for the test process than aiortc's
            # own VP8/H.264 encoders at 720p.
            self.video = NoisyH264Track(width, height, noise=noisy, stamp=stamp, profile=h264_profile)
            video_codec = "H264"
        else:
            self.video = PatternVideoTrack(width, height, grain=grain)
        self.audio = ToneAudioTrack() if audio else None
        self.video_codec = video_codec
        self.pc = _pc()
        self.location: str | None = None
        self.replies: list[str] = []
        self.replied = asyncio.Event()
        self.channel: RTCDataChannel | None = None
        if control:  # a browser publisher's "cards" channel for card actions
            self.channel = self.pc.createDataChannel("cards")

            @self.channel.on("message")
            def _reply(message: str | bytes) -> None:
                self.replies.append(message if isinstance(message, str) else message.decode())
                self.replied.set()

    async def start(self, http: aiohttp.ClientSession) -> None:
        video_tx = self.pc.addTransceiver(self.video, direction="sendonly")
        if self.video_codec is not None:
            from aiortc import RTCRtpSender

            caps = RTCRtpSender.getCapabilities("video").codecs
            video_tx.setCodecPreferences([c for c in caps if c.mimeType == f"video/{self.video_codec}"])
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        if self.offer_profile_level_id is not None:  # what OBS or FFmpeg would offer for Main/High
            offer = re.sub(r"profile-level-id=[0-9a-fA-F]{6}", f"profile-level-id={self.offer_profile_level_id}", offer)
        self.answer = ""
        self.location, answer = await _post_sdp(http, self.url, offer, self.key)
        self.answer = answer
        if self.offer_profile_level_id is not None:  # our aiortc itself only takes baseline back
            answer = answer.replace(f"profile-level-id={self.offer_profile_level_id}", "profile-level-id=42e01f")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def stop(self, http: aiohttp.ClientSession | None, *, delete: bool = True) -> int | None:
        """Close; with ``delete`` send DELETE first and return its status."""
        status = None
        if delete and http is not None and self.location is not None:
            async with http.delete(self.location) as res:
                status = res.status
        await self.pc.close()
        return status


@dataclass
class DecodedFrame:
    width: int
    height: int
    counter: int
    at: float
    rtp: int = 0  # the frame's RTP timestamp less the first one received (aiortc's decoded pts)


@dataclass
class ViewerRecord:
    frames: list[DecodedFrame] = field(default_factory=list)
    audio_frames: int = 0
    messages: list[str] = field(default_factory=list)
    message_times: list[float] = field(default_factory=list)  # time.monotonic() of each message
    posted_at: float = 0.0

    def got(self, kind: str, **fields: object) -> bool:
        """Whether a data-channel message of ``type`` ``kind`` with these field values arrived."""
        for text in self.messages:
            message = json.loads(text)
            if message.get("type") == kind and all(message.get(k) == v for k, v in fields.items()):
                return True
        return False


class WhepViewer:
    """Watches ``{base}/whep/{stream}``, decoding every frame and reading its counter."""

    def __init__(
        self,
        base: str,
        stream: str,
        *,
        data_channel: bool = True,
        read_pattern: bool = True,
        rendition: str | None = None,
        remb: bool = True,
        audio: bool = True,
        video_codec: str | None = None,
    ) -> None:
        self.url = f"{base}/whep/{stream}" + (f"?rendition={rendition}" if rendition else "")
        self._video_codec = video_codec  # e.g. "VP8": offer only that codec
        self.pc = _pc()
        self.record = ViewerRecord()
        self.location: str | None = None
        self._read_pattern = read_pattern
        self.last_luma: Any = None
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._data_channel = data_channel
        self._remb = remb
        self._audio = audio
        self.channel: RTCDataChannel | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        video = self.pc.addTransceiver("video", direction="recvonly")
        if self._video_codec is not None:
            caps = RTCRtpReceiver.getCapabilities("video")
            wanted = (f"video/{self._video_codec}", "video/rtx")
            video.setCodecPreferences([c for c in (caps.codecs if caps else []) if c.mimeType in wanted])
        if self._audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        if self._data_channel:
            channel = self.pc.createDataChannel("cards")
            self.channel = channel

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                text = message if isinstance(message, str) else message.decode()
                at = time.monotonic()
                for one in unbatch(text):  # each message of a batch as if it had come alone
                    self.record.messages.append(one)
                    self.record.message_times.append(at)
                self._changed.set()

        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.record.posted_at = time.monotonic()
        offer = self.pc.localDescription.sdp
        if not self._remb:
            # Without abs-send-time aiortc's receiver never estimates bandwidth, so the only
            # REMB the server sees is what ``send_remb`` says: a viewer on a link we dictate.
            offer = "".join(ln for ln in offer.splitlines(keepends=True) if "abs-send-time" not in ln)
        self.location, answer = await _post_sdp(http, self.url, offer, None)
        self.answer = answer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    counter = -1
                    if self._read_pattern:
                        luma = frame.to_ndarray(format="gray")
                        counter = read_counter(luma.astype(np.uint8, copy=False))
                        self.last_luma = luma  # the newest decoded picture, for content checks
                    rtp = int(frame.pts or 0)
                    self.record.frames.append(DecodedFrame(frame.width, frame.height, counter, time.monotonic(), rtp))
                else:
                    self.record.audio_frames += 1
                self._changed.set()

    def rtp_origin(self) -> int | None:
        """The RTP timestamp of the first video packet received: ``DecodedFrame.rtp`` counts from
        it (aiortc's receiver subtracts it; it has no public API for the value itself)."""
        mapper = getattr(self._video_receiver(), "_RTCRtpReceiver__timestamp_mapper", None)
        origin = getattr(mapper, "_origin", None)
        return origin if isinstance(origin, int) else None

    def rtp_of(self, frame: DecodedFrame) -> int:
        """A decoded frame's RTP timestamp as the server sent it."""
        origin = self.rtp_origin()
        assert origin is not None, "no video received yet"
        return (origin + frame.rtp) & 0xFFFFFFFF

    def _video_receiver(self) -> Any:
        return next(t.receiver for t in self.pc.getTransceivers() if t.kind == "video")

    async def bytes_received(self) -> int:
        """Bytes received on the bundled transport so far (the standard "transport" stats).

        aiortc's inbound-rtp stats carry no byte count; with ``audio=False`` and no data channel
        traffic this is the video's SRTP bytes plus a little RTCP.
        """
        report = await self.pc.getStats()
        return sum(int(getattr(s, "bytesReceived", 0)) for s in report.values() if s.type == "transport")

    async def send_remb(self, bps: int) -> None:
        """Tell the server this viewer's bandwidth estimate, as a browser's REMB would.

        aiortc has no public API to send RTCP, so this uses its receiver's RTCP send path.
        """
        receiver = self._video_receiver()
        ssrcs = [s.source for s in receiver.getSynchronizationSources()]
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bps, ssrcs))
        await receiver._send_rtcp(packet)

    def send(self, message: str) -> None:
        assert self.channel is not None and self.channel.readyState == "open"
        self.channel.send(message)

    async def wait_for(self, predicate: object, timeout: float) -> None:
        """Wait until ``predicate(record)`` is true; raise TimeoutError after ``timeout`` s."""
        assert callable(predicate)

        async def _wait() -> None:
            while not predicate(self.record):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def stop(self, http: aiohttp.ClientSession | None, *, delete: bool = True) -> int | None:
        status = None
        if delete and http is not None and self.location is not None:
            async with http.delete(self.location) as res:
                status = res.status
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
        return status
