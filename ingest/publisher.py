"""One WHIP publisher: its aiortc peer connection and the tasks that move its decoded media.

The session owns every task it starts and cancels them in ``close``; nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from ingest.decoder import VideoDecoder
from ingest.frames import FrameSink
from ingest.jitter import AssembledFrame
from ingest.receiver import VideoReceiver
from ingest.session import PeerSession, send_last

log = logging.getLogger(__name__)

BYE_CHANNEL_WAIT_S = 2.0  # how long a failed publisher's close waits for its channel to open


class PublisherSession(PeerSession):
    """Owns one publisher's peer connection, its media pumps and its watchdog.

    ``on_end(session, reason)`` is awaited exactly once, after everything is released.
    """

    kind = "publisher"

    def __init__(
        self,
        session_id: str,
        stream: str,
        pc: RTCPeerConnection,
        sink: FrameSink,
        *,
        setup_timeout_s: float,
        media_timeout_s: float,
        on_end: Callable[[PublisherSession, str], Awaitable[None]],
        on_message: Callable[[PublisherSession, str | bytes], Awaitable[str | None]] | None = None,
    ) -> None:
        super().__init__(session_id, stream, pc)
        self._sink = sink
        self._setup_timeout_s = setup_timeout_s
        self._media_timeout_s = media_timeout_s
        self._on_end = on_end
        self._on_message = on_message
        self._last_media_at = asyncio.get_running_loop().time()
        self._channel: RTCDataChannel | None = None
        self._bye: str | None = None  # set when the session ends for a reason the peer must hear
        self._channel_open = asyncio.Event()
        self._video_in: VideoReceiver | None = None
        self._decoder: VideoDecoder | None = None
        self._video_started = False
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)

    def start(self) -> None:
        """Start the watchdog; call once the answer has been sent."""
        self._spawn(self._watchdog(), "watchdog")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        """A browser publisher's control channel: each message is handed on, the reply sent back.

        What the messages mean (and the reply to one that means nothing) is relay's business.
        """
        self._channel = channel
        if channel.readyState == "open":
            self._channel_open.set()
        else:
            channel.on("open", self._channel_open.set)
        if self._on_message is None:
            return
        handler = self._on_message

        def received(message: str | bytes) -> None:
            self._spawn(self._answer(channel, handler, message), "control message")

        channel.on("message", received)

    async def _answer(
        self,
        channel: RTCDataChannel,
        handler: Callable[[PublisherSession, str | bytes], Awaitable[str | None]],
        message: str | bytes,
    ) -> None:
        reply = await handler(self, message)
        if reply is not None and channel.readyState == "open":
            channel.send(reply)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            receiver = next((t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            if receiver is not None and self._video_in is None:
                self._start_video_path(receiver)
            self._spawn(self._pump_video(track), "video")  # VP8 only: H.264 never reaches aiortc's decoder
        elif track.kind == "audio":
            self._spawn(self._pump_audio(track), "audio")

    def _start_video_path(self, receiver: Any) -> None:
        """H.264 goes through LiveCart's own jitter buffer and decoder thread (``receiver.py``)."""
        video_in = VideoReceiver(receiver, self._on_encoded_frame)
        decoder = VideoDecoder(self.id[:8], self._on_decoded_frame, video_in.request_keyframe)
        video_in.install()
        self._video_in, self._decoder = video_in, decoder
        self._spawn(video_in.run(), "video receive")
        self._spawn(decoder.run(), "video decode")

    def _on_encoded_frame(self, frame: AssembledFrame) -> None:
        self._last_media_at = asyncio.get_running_loop().time()
        if self._video_in is not None:
            self._sink.on_encoded_video(frame, self._video_in.request_keyframe)
        if self._decoder is not None:
            self._decoder.offer(frame)

    def _on_decoded_frame(self, frame: av.VideoFrame) -> None:
        if not self._video_started:
            self._video_started = True
            log.info("%s: first video frame %dx%d", self.label, frame.width, frame.height)
            self._sink.on_source_started()
        self._sink.on_video(frame)

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self._last_media_at = loop.time()
                self._on_decoded_frame(frame)

    def ingest_stats(self) -> dict[str, object] | None:
        """The publisher's video receive path, for the API: loss, repairs, skips, decoding."""
        video_in, decoder = self._video_in, self._decoder
        if video_in is None or decoder is None:
            return None
        if video_in.codec not in (None, "H264"):
            return {"path": "aiortc", "codec": video_in.codec}
        return {
            "path": "livecart",
            "codec": video_in.codec,
            **video_in.stats()._asdict(),
            "frames_decoded": decoder.frames_decoded,
            "decode_dropped": decoder.frames_dropped,
            "decode_errors": decoder.decode_errors,
        }

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self._last_media_at = loop.time()
                    self._sink.on_audio(frame)

    async def _watchdog(self) -> None:
        """Ends the session when it does not connect in time, fails, or goes silent."""
        loop = asyncio.get_running_loop()
        if not await self._await_connected(self._setup_timeout_s):
            return
        self._last_media_at = loop.time()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._failed.wait(), 1.0)
            if self._failed.is_set():
                self.close_soon(self.failure())
                return
            if loop.time() - self._last_media_at > self._media_timeout_s:
                self.close_soon(f"no media for {self._media_timeout_s:g} s")
                return

    def end_with_bye(self, reason: str, bye: str) -> None:
        """Its media path broke after the answer: send ``bye`` (the message, as relay's protocol
        spells it) on its data channel if it has one, and end now."""
        if self._bye is None:
            self._bye = bye
            self.close_soon(reason)

    async def _close(self, reason: str) -> None:
        if self._bye is not None:
            await self._say_bye(self._bye)
        await super()._close(reason)

    async def _say_bye(self, message: str) -> None:
        # The media path fails the moment DTLS is up, before the peer has opened its channel.
        if self.pc.sctp is not None and not self._channel_open.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._channel_open.wait(), BYE_CHANNEL_WAIT_S)
        await send_last(self._channel, message)

    async def _ended(self, reason: str) -> None:
        await self._on_end(self, reason)
