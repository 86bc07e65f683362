"""One WHEP viewer: its peer connection, outgoing tracks and optional ``cards`` data channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCDataChannel, RTCPeerConnection

from ingest.logctx import context_for
from ingest.peer import close_quietly, watch_state
from relay.fanout import ViewerTracks

log = logging.getLogger(__name__)

DATA_CHANNEL_LABEL = "cards"
MAX_CHANNEL_BUFFER = 256 * 1024  # bytes queued on a slow viewer's channel before we skip
MAX_INCOMING_MESSAGE = 1024  # a viewer only ever sends small control messages


class ViewerSession:
    """Owns one viewer's peer connection and watchdog; ``on_end`` is awaited once at the end."""

    def __init__(
        self,
        session_id: str,
        stream: str,
        pc: RTCPeerConnection,
        tracks: ViewerTracks,
        *,
        setup_timeout_s: float,
        on_end: Callable[[ViewerSession, str], Awaitable[None]],
        greeting: Callable[[], list[str]],
        on_message: Callable[[ViewerSession, str], None],
    ) -> None:
        self.id = session_id
        self.stream = stream
        self.pc = pc
        self.tracks = tracks
        self._setup_timeout_s = setup_timeout_s
        self._on_end = on_end
        self._greeting = greeting
        self._on_message = on_message
        self._channel: RTCDataChannel | None = None
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.messages_dropped = 0
        self.bad_messages = 0
        watch_state(pc, self._on_state)
        pc.on("datachannel", self._on_datachannel)

    @property
    def label(self) -> str:
        return f"viewer {self.stream}/{self.id[:8]}"

    @property
    def task_count(self) -> int:
        return int(self._watchdog is not None and not self._watchdog.done())

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.create_task(self._watch(), context=context_for(self.id))
        self._watchdog.set_name(f"{self.label} watchdog")

    def _on_state(self, state: str) -> None:
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL:
            return
        self._channel = channel
        channel.on("message", self._received)
        if channel.readyState == "open":
            self._greet()
        else:
            channel.on("open", self._greet)

    def _received(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            try:
                message = message.decode()
            except UnicodeDecodeError:
                self.bad_messages += 1
                return
        if len(message) > MAX_INCOMING_MESSAGE:
            self.bad_messages += 1
            return
        self._on_message(self, message)

    def _greet(self) -> None:
        for message in self._greeting():
            self.send(message)

    def send(self, message: str) -> None:
        """Send a pre-serialised JSON message if the viewer has an open ``cards`` channel."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > MAX_CHANNEL_BUFFER:
            # A viewer that cannot take its messages is dropped (and told), never buffered for.
            self.messages_dropped += 1
            channel.send('{"type": "bye", "reason": "data channel too slow"}')
            self.close_soon("data channel too slow")
            return
        channel.send(message)

    async def _watch(self) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self._setup_timeout_s)
        except TimeoutError:
            self.close_soon(f"not connected within {self._setup_timeout_s:g} s")
            return
        await self._failed.wait()
        self.close_soon(f"connection {self.pc.connectionState}")

    async def say_goodbye(self, message: str, timeout_s: float = 1.0) -> None:
        """Send a last message and give it up to ``timeout_s`` to leave before the close."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        flushed = asyncio.Event()
        channel.on("bufferedamountlow", flushed.set)
        channel.send(message)
        if channel.bufferedAmount > channel.bufferedAmountLowThreshold:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(flushed.wait(), timeout_s)

    def close_soon(self, reason: str) -> None:
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_task(self._close(reason), context=context_for(self.id))

    async def close(self, reason: str) -> None:
        self.close_soon(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        log.info("%s: ending (%s)", self.label, reason)
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await close_quietly(self.pc, self.label)
        await self._on_end(self, reason)
