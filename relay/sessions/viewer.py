"""One WHEP viewer: its peer connection, outgoing tracks and optional ``cards`` data channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCDataChannel, RTCPeerConnection

from ingest.session import PeerSession, send_last
from relay.identity import Identity, guest
from relay.media.fanout import ViewerTracks
from relay.media.udplink import LinkUnavailable, UdpLink
from relay.messages import Bye, encode

log = logging.getLogger(__name__)

DATA_CHANNEL_LABEL = "cards"
MAX_CHANNEL_BUFFER = 256 * 1024  # bytes queued on a slow viewer's channel before we skip
BYE_CHANNEL_WAIT_S = 2.0  # how long a failed viewer's close waits for its channel to open


class ViewerSession(PeerSession):
    """Owns one viewer's peer connection and watchdog; ``on_end`` is awaited once at the end."""

    kind = "viewer"

    def __init__(
        self,
        session_id: str,
        stream: str,
        pc: RTCPeerConnection,
        tracks: ViewerTracks,
        *,
        setup_timeout_s: float,
        on_end: Callable[[ViewerSession, str], Awaitable[None]],
        stop_media: Callable[[], None],
        greeting: Callable[[], list[str]],
        on_message: Callable[[ViewerSession, str | bytes], None],
        expects_channel: bool = False,
        identity: Identity | None = None,
    ) -> None:
        super().__init__(session_id, stream, pc)
        self.tracks = tracks
        self.identity = identity or guest()  # who this viewer is (its token, or a guest)
        self._setup_timeout_s = setup_timeout_s
        self._on_end = on_end
        self._stop_media = stop_media
        self.links: dict[int, UdpLink] = {}  # the fast path's link per DTLS transport
        self._greeting = greeting
        self._on_message = on_message
        self._channel: RTCDataChannel | None = None
        self._bye: str | None = None  # set when the session ends for a reason the viewer must hear
        self._expects_channel = expects_channel  # its offer has a data channel: a bye can reach it
        self._channel_open = asyncio.Event()
        # Messages sent before the channel is open (e.g. the first ``rendition``, which follows
        # the first keyframe and can beat the channel's SCTP setup): delivered after the greeting.
        self._early: list[str] = []
        self._early_bytes = 0
        pc.on("datachannel", self._on_datachannel)

    def start(self) -> None:
        self._spawn(self._watch(), "watchdog")

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
        self._on_message(self, message)  # what it means, if anything, is the stream's business

    def _greet(self) -> None:
        self._channel_open.set()
        for message in self._greeting():
            self.send(message)
        early, self._early, self._early_bytes = self._early, [], 0
        for message in early:
            self.send(message)

    def send(self, message: str) -> None:
        """Send a pre-serialised JSON message on the viewer's ``cards`` channel; until it is open
        (if its offer has one) the message waits, in order, never dropped: a viewer whose channel
        never opens and piles up ``MAX_CHANNEL_BUFFER`` of them is ended instead."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            if (self._expects_channel or channel is not None) and not self._channel_open.is_set():
                self._early.append(message)
                self._early_bytes += len(message)
                if self._early_bytes > MAX_CHANNEL_BUFFER:
                    self._early.clear()
                    self.close_soon("data channel never opened")
            return
        if channel.bufferedAmount > MAX_CHANNEL_BUFFER:
            # A viewer that cannot take its messages is dropped (and told), never buffered for.
            channel.send(encode(Bye("data channel too slow")))
            self.close_soon("data channel too slow")
            return
        channel.send(message)

    async def _watch(self) -> None:
        """A viewer whose connection does not come up in time, or fails, is removed at once."""
        if not await self._await_connected(self._setup_timeout_s):
            return
        await self._failed.wait()
        self.close_soon(self.failure())

    def link_for(self, dtls: object, kind: str) -> UdpLink | None:
        """The fast path's link over ``dtls`` (one per transport, made on first use); None, with
        the session ended and told why, when the transport gives no usable socket."""
        link = self.links.get(id(dtls))
        if link is None:
            try:
                link = self.links[id(dtls)] = UdpLink.from_dtls(dtls)
            except LinkUnavailable as exc:
                log.warning("%s: cannot send %s: %s", self.label, kind, exc)
                self.end_with_bye(f"no {kind} link: {exc}")
        return link

    def end_with_bye(self, reason: str) -> None:
        """The viewer's media path broke after its answer: stop at once, tell it, then close.

        A viewer left connected with no media would wait forever; one told ``bye`` reconnects.
        """
        if self._bye is not None:
            return
        self._bye = encode(Bye(reason))
        self._stop_media()
        self.close_soon(reason)

    async def _close(self, reason: str) -> None:
        if self._bye is not None:  # before the peer connection (and its data channel) goes
            if self._expects_channel:  # the media path breaks as DTLS comes up, before the channel opens
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._channel_open.wait(), BYE_CHANNEL_WAIT_S)
            await self.say_goodbye(self._bye)
        await super()._close(reason)

    async def say_goodbye(self, message: str, timeout_s: float = 1.0) -> None:
        """Send a last message and give it up to ``timeout_s`` to leave before the close."""
        await send_last(self._channel, message, timeout_s)

    def _stopping(self) -> None:
        self._stop_media()  # no packet leaves for this viewer once its close has begun
        for link in self.links.values():  # the fan-out closed those it used; a spare one goes too
            link.close()

    async def _ended(self, reason: str) -> None:
        await self._on_end(self, reason)
