"""One WHIP publisher: its aiortc peer connection and the tasks that move its decoded media.

The session owns every task it starts and cancels them in ``close``; nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from ingest.frames import FrameSink
from ingest.logctx import context_for
from ingest.peer import close_quietly, watch_state

log = logging.getLogger(__name__)

MAX_CONTROL_MESSAGE = 4096


class PublisherSession:
    """Owns one publisher's peer connection, its media pumps and its watchdog.

    ``on_end(session, reason)`` is awaited exactly once, after everything is released.
    """

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
        on_message: Callable[[PublisherSession, str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.id = session_id
        self.stream = stream
        self.pc = pc
        self._sink = sink
        self._setup_timeout_s = setup_timeout_s
        self._media_timeout_s = media_timeout_s
        self._on_end = on_end
        self._on_message = on_message
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._last_media_at = asyncio.get_running_loop().time()
        self.video_frames = 0
        self.audio_frames = 0
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        watch_state(pc, self._on_state)

    @property
    def label(self) -> str:
        return f"publisher {self.stream}/{self.id[:8]}"

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        """Start the watchdog; call once the answer has been sent."""
        self._spawn(self._watchdog(), "watchdog")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, context=context_for(self.id))
        task.set_name(f"{self.label} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state(self, state: str) -> None:
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        """A browser publisher's control channel: each message is handed on, the reply sent back."""
        if self._on_message is None:
            return
        handler = self._on_message

        def received(message: str | bytes) -> None:
            if isinstance(message, bytes) or len(message) > MAX_CONTROL_MESSAGE:
                channel.send('{"type": "error", "reason": "send JSON text of at most 4 KiB"}')
                return
            self._spawn(self._answer(channel, handler, message), "control message")

        channel.on("message", received)

    async def _answer(
        self, channel: RTCDataChannel, handler: Callable[[PublisherSession, str], Awaitable[str | None]], text: str
    ) -> None:
        reply = await handler(self, text)
        if reply is not None and channel.readyState == "open":
            channel.send(reply)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._spawn(self._pump_video(track), "video")
        elif track.kind == "audio":
            self._spawn(self._pump_audio(track), "audio")

    async def _pump_video(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        started = False
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                if not started:
                    started = True
                    log.info("%s: first video frame %dx%d", self.label, frame.width, frame.height)
                    self._sink.on_source_started()
                self._last_media_at = loop.time()
                self.video_frames += 1
                self._sink.on_video(frame)

    async def _pump_audio(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self._last_media_at = loop.time()
                    self.audio_frames += 1
                    self._sink.on_audio(frame)

    async def _watchdog(self) -> None:
        """Ends the session when it does not connect in time, fails, or goes silent."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._connected.wait(), self._setup_timeout_s)
        except TimeoutError:
            self.close_soon(f"not connected within {self._setup_timeout_s:g} s")
            return
        self._last_media_at = loop.time()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._failed.wait(), 1.0)
            if self._failed.is_set():
                self.close_soon(f"connection {self.pc.connectionState}")
                return
            if loop.time() - self._last_media_at > self._media_timeout_s:
                self.close_soon(f"no media for {self._media_timeout_s:g} s")
                return

    def close_soon(self, reason: str) -> None:
        """Start closing from inside a callback or one of the session's own tasks."""
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_task(self._close(reason), context=context_for(self.id))

    async def close(self, reason: str) -> None:
        """Close the session and wait until everything it owned is released."""
        self.close_soon(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        log.info("%s: ending (%s)", self.label, reason)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_quietly(self.pc, self.label)
        await self._on_end(self, reason)
