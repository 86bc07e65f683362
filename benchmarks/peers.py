"""aiortc client peers that talk to a LiveCart server like any user: a WHIP publisher and a
WHEP viewer. Used by the end-to-end tests and the benchmark client.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from yarl import URL

from benchmarks.pattern import draw_counter, read_counter


class PatternVideoTrack(VideoStreamTrack):
    """Synthetic video: a moving gradient with the frame counter drawn as blocks."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.counter = 0
        self._base = np.tile(np.arange(width, dtype=np.uint16), (height, 1))

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.counter += 1
        yuv = np.full((self.height * 3 // 2, self.width), 128, dtype=np.uint8)
        luma = yuv[: self.height]
        luma[:] = ((self._base + self.counter * 4) % 200 + 28).astype(np.uint8)
        draw_counter(luma, self.counter)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone (aiortc's AudioStreamTrack sends silence)."""

    def __init__(self) -> None:
        super().__init__()
        self._phase = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        assert isinstance(frame, av.AudioFrame)
        samples = frame.samples
        t = (np.arange(samples) + self._phase) / 48000
        self._phase += samples
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        out.sample_rate = 48000
        out.pts = frame.pts
        out.time_base = fractions.Fraction(1, 48000)
        return out


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _post_sdp(
    session: aiohttp.ClientSession, url: str, sdp: str, token: str | None
) -> tuple[str, str]:
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

    def __init__(self, base: str, stream: str, key: str, *, width: int = 640, height: int = 360,
                 audio: bool = True, video_codec: str | None = None) -> None:
        self.url = f"{base}/whip/{stream}"
        self.key = key
        self.video = PatternVideoTrack(width, height)
        self.audio = ToneAudioTrack() if audio else None
        self.video_codec = video_codec
        self.pc = _pc()
        self.location: str | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        video_tx = self.pc.addTransceiver(self.video, direction="sendonly")
        if self.video_codec is not None:
            from aiortc import RTCRtpSender

            caps = RTCRtpSender.getCapabilities("video").codecs
            video_tx.setCodecPreferences([c for c in caps if c.mimeType == f"video/{self.video_codec}"])
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.location, answer = await _post_sdp(http, self.url, self.pc.localDescription.sdp, self.key)
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


@dataclass
class ViewerRecord:
    frames: list[DecodedFrame] = field(default_factory=list)
    audio_frames: int = 0
    messages: list[str] = field(default_factory=list)
    posted_at: float = 0.0


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
    ) -> None:
        self.url = f"{base}/whep/{stream}" + (f"?rendition={rendition}" if rendition else "")
        self.pc = _pc()
        self.record = ViewerRecord()
        self.location: str | None = None
        self._read_pattern = read_pattern
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._data_channel = data_channel

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        if self._data_channel:
            channel = self.pc.createDataChannel("cards")

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                self.record.messages.append(message if isinstance(message, str) else message.decode())
                self._changed.set()

        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.record.posted_at = time.monotonic()
        self.location, answer = await _post_sdp(http, self.url, self.pc.localDescription.sdp, None)
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
                    self.record.frames.append(DecodedFrame(frame.width, frame.height, counter, time.monotonic()))
                else:
                    self.record.audio_frames += 1
                self._changed.set()

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
