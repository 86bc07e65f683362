"""An edge's pull of one stream from its origin: the origin's rungs in, the edge's fan-out fed.

The edge is a privileged WHEP viewer of the origin (``relay.sessions.pullserve`` is the other
side): one peer connection with one recvonly video section per rung, the audio, and the
``cards`` data channel. Each rung's RTP goes through the same jitter buffer as a publisher's
(``ingest.receiver.VideoReceiver``: NACK, re-NACK, PLI, skip to a keyframe), and whole frames go
to the edge stream's fan-out exactly as its transcoder would hand them over; so the edge's
viewers get keyframe-on-join (a keyframe request on the edge becomes a PLI to the origin on
that rung), ABR between rungs, NACK answers from the edge's own packet history, and cards.

The origin sends the pull its media clock with no offset, so an RTP timestamp here *is* the
origin's ``pts``: the edge's frames, and so its cards' ``pts_ms``, are the origin's. Card events
arrive with their ``seq`` and ``pts_ms`` and are delivered as they are (``CardBoard.mirror``).

``EdgeUpstream`` keeps pulling while it exists: when a pull breaks (the origin restarts, the
stream's rungs change), it asks where the origin is now and pulls again, and the edge's viewers
stay connected throughout and resume at the next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RtpPacket
from yarl import URL

from ingest.errors import LiveCartError
from ingest.jitter import AssembledFrame
from ingest.peer import close_quietly, new_peer_connection
from ingest.receiver import VideoReceiver
from ingest.session import PeerSession
from relay.cards.board import CardEvent
from relay.cards.card import parse_card
from relay.identity import Identity
from relay.messages import Bans, EdgeTalk, ErrorMessage, ToViewers, encode, parse_bans, parse_to_viewers
from relay.sessions.stream import Stream
from relay.talk.comments import CommentRefused
from relay.talk.forward import EdgeTalkBuffer
from transcode.frames import EncodedFrame, EncoderStats

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5.0
RETRY_MIN_S = 0.25
RETRY_MAX_S = 2.0
MAX_MESSAGE = 64 * 1024


class Unwrap:
    """32-bit RTP timestamps back to the origin's unbounded ``pts`` (wraps every 13 h at 90 kHz)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, ts: int) -> int:
        last = self.last
        if last is None:
            self.last = ts
            return ts
        step = (ts - last) & 0xFFFFFFFF
        if step >= 1 << 31:
            step -= 1 << 32
        self.last = last + step
        return self.last


class RungCounters:
    """What the pull received on one rung: the edge's stand-in for an encoder's counters."""

    __slots__ = ("bytes", "frames", "keyframes")

    def __init__(self) -> None:
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0


class AudioTap:
    """Takes the pull's Opus packets from aiortc's receiver as they are (no decode, no re-encode)."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: Callable[[bytes, int], None]) -> None:
        self._receiver = receiver
        self._on_packet = on_packet

    def install(self) -> None:
        self._receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        receiver: Any = self._receiver
        codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() != "opus" or not packet.payload:
            return
        streams = receiver._RTCRtpReceiver__remote_streams
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # aiortc's receiver reports go on as before
        self._on_packet(packet.payload, packet.timestamp)


class PullConnection(PeerSession):
    """Owns one pull's peer connection and its receive tasks; ends when the connection does."""

    kind = "pull"

    def __init__(self, session_id: str, stream: str, pc: Any, receivers: list[VideoReceiver], setup_s: float) -> None:
        super().__init__(session_id, stream, pc)
        self._receivers = receivers
        self._setup_s = setup_s
        self.ended = asyncio.Event()
        self.reason = ""

    def start(self) -> None:
        for receiver in self._receivers:
            self._spawn(receiver.run(), "rung receive")
        self._spawn(self._watch(), "watchdog")

    async def _watch(self) -> None:
        if not await self._await_connected(self._setup_s):
            return
        await self._failed.wait()
        self.close_soon(self.failure())

    async def _ended(self, reason: str) -> None:
        self.reason = reason
        self.ended.set()


class EdgeUpstream:
    """Owns an edge stream's pull of its origin, and the retries when a pull breaks.

    It stands in for the stream's publisher (the stream is live while the origin's is) and for
    its transcoder (``Stream.use_upstream``): keyframe requests go to the origin, counters come
    from what arrived. ``locate()`` returns the origin's base URL now (the cluster directory).
    """

    def __init__(
        self,
        stream: Stream,
        *,
        locate: Callable[[], Awaitable[str]],
        token: str,
        node_id: str,
        http: aiohttp.ClientSession,
        setup_timeout_s: float,
    ) -> None:
        self.stream = stream
        self.id = secrets.token_urlsafe(12)
        self._locate = locate
        self._token = token
        self._node_id = node_id
        self._http = http
        self._setup_s = setup_timeout_s
        self.sizes: dict[str, tuple[int, int]] = {}
        self._receivers: dict[str, VideoReceiver] = {}
        self._counters: dict[str, RungCounters] = {}
        self._video_pts: dict[str, Unwrap] = {}
        self._audio_pts = Unwrap()
        self._connection: PullConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.origin: str | None = None
        self.pulls = 0  # pulls negotiated (1 unless one broke and was made again)
        self.last_error: str | None = None
        # The viewers' comments and likes, on their way to the origin (relay.talk.forward).
        self.talk = EdgeTalkBuffer()
        self._channel: Any = None  # the current pull's data channel (None between pulls)
        self._flush: asyncio.TimerHandle | None = None
        self.talk_lost = 0  # comments refused because the pull broke before they were sent

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected

    # ---- what the stream sees: its publisher and its frame source ----------------------------
    @property
    def label(self) -> str:
        return f"pull {self.stream.name}/{self.id[:8]}"

    @property
    def task_count(self) -> int:
        return (1 if self._task is not None else 0) + (self._connection.task_count if self._connection else 0)

    def ingest_stats(self) -> dict[str, object] | None:
        return {
            "path": "pull",
            "origin": self.origin,
            "pulls": self.pulls,
            "connected": self._connection is not None and self._connection.connected,
            "last_error": self.last_error,
            "talk": {"comments_forwarded": self.talk.forwarded, "comments_lost": self.talk_lost},
            "rungs": {rung: r.stats()._asdict() for rung, r in self._receivers.items()},
        }

    def source_lost(self, reason: str) -> None:
        """The node this pull comes from is gone (the directory says so): pull again at once
        rather than wait for ICE to notice (up to tens of seconds when its machine vanishes)."""
        if self._connection is not None:
            self._connection.close_soon(reason)

    def request_keyframe(self, rung: str) -> None:
        receiver = self._receivers.get(rung)
        if receiver is not None:
            receiver.request_keyframe()  # a PLI to the origin on that rung (the buffer paces them)

    def stats(self) -> list[EncoderStats]:
        out = []
        for rung, (width, height) in self.sizes.items():
            c = self._counters.get(rung) or RungCounters()
            out.append(EncoderStats(rung, width, height, c.frames, c.frames, 0, 0, c.keyframes, 0, c.bytes, 0.0))
        return out

    # ---- the conversation: the origin owns it; this edge forwards its viewers' part -------------
    def comment(self, viewer_id: str, who: Identity, text: object) -> None:
        if self._channel is None:
            raise CommentRefused("comments are paused: this server is reconnecting to the stream's origin", 503, 1.0)
        self.talk.comment(viewer_id, who, text)
        self._schedule_talk()

    def like(self, count: object, gift: object = None) -> None:
        if self._channel is None:
            raise CommentRefused("likes are paused: this server is reconnecting to the stream's origin", 503, 1.0)
        self.talk.like(count, gift)
        self._schedule_talk()

    def audience(self, viewers: int, *, joined: bool) -> None:
        """This edge's viewers of the stream changed: the origin's analytics hear it."""
        self.talk.audience(viewers, joined=joined)
        self._schedule_talk()

    def click(self, viewer_id: str, card: str) -> None:
        self.talk.clicked(viewer_id, card)
        self._schedule_talk()

    def below_gone(self, pull_id: str) -> None:
        """A relay: the edge pulling as ``pull_id`` left."""
        self.talk.below_gone(pull_id)
        self._schedule_talk()

    def relay_talk(self, pull_id: str, talk: EdgeTalk) -> list[str]:
        """A relay: talk from the edge pulling as ``pull_id``, passed up with the relay's own;
        returns the refs it could not take (their viewers are told)."""
        if self._channel is None:
            return [c.ref for c in talk.comments]
        refused = self.talk.add(talk, pull_id)
        self._schedule_talk()
        return refused

    def _schedule_talk(self) -> None:
        """Send what waits when it is due, on the current pull (between pulls, it waits for the
        next one, which schedules it)."""
        if self._flush is not None or self._channel is None:
            return
        loop = asyncio.get_running_loop()
        when = self.talk.next_due(loop.time())
        if when is not None:
            self._flush = loop.call_at(when, self._send_talk)

    def _send_talk(self) -> None:
        self._flush = None
        channel = self._channel
        if channel is None or channel.readyState in ("closing", "closed"):
            self._talk_broke("the connection to the stream's origin broke")
            return
        loop = asyncio.get_running_loop()
        if channel.readyState != "open":  # the pull's channel is still opening: again in a moment
            self._flush = loop.call_later(self.talk.interval_s, self._send_talk)
            return
        for message in self.talk.due(loop.time()):
            channel.send(message)
        self._schedule_talk()  # whatever came in meanwhile

    def _talk_broke(self, reason: str) -> None:
        """The pull broke with talk still waiting: each poster hears that it was not posted."""
        refs = self.talk.drop()
        self.talk_lost += len(refs)
        error = encode(ErrorMessage(f"your comment was not posted ({reason}); try again", 503))
        self.stream.to_viewers([(ref, error) for ref in dict.fromkeys(refs)])

    # ---- lifetime -----------------------------------------------------------------------------
    def start(self) -> None:
        self.stream.use_upstream(self)
        self.stream.set_publisher(self)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.label)

    async def close(self, reason: str) -> None:
        """Stop pulling (the last viewer left long enough ago, or the node stops)."""
        task, self._task = self._task, None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.stream.publisher is self:
            self.stream.set_publisher(None)
            self.stream.use_upstream(None)
        log.info("%s: stopped (%s)", self.label, reason)

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                origin = self.origin = await self._locate()
                sizes = await self._origin_rungs(origin)
                if sizes:
                    await self._pull(origin, sizes)
                    delay = RETRY_MIN_S
                else:
                    self.stream.on_upstream_phase("offline")
            except (LiveCartError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                if reason != self.last_error:  # one line per new trouble, not one per retry
                    log.warning("%s: cannot pull from the origin: %s (retrying)", self.label, reason)
                self.last_error = reason
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)

    async def _origin_rungs(self, origin: str) -> dict[str, tuple[int, int]]:
        """The H.264 rungs the origin encodes now (none while its stream is offline); asked with
        the cluster token, which on a relay also starts the relay's own pull."""
        url = f"{origin}/cluster/pull/{self.stream.name}"
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as res:
            if res.status != 200:
                raise ValueError(f"GET {url} -> {res.status}")
            data = await res.json()
        if not data.get("live"):
            return {}
        return {
            r["name"]: (int(r["width"]), int(r["height"]))
            for r in data.get("rungs", [])
            if r.get("codec", "h264") == "h264" and r.get("width")
        }

    async def _pull(self, origin: str, sizes: dict[str, tuple[int, int]]) -> None:
        pc = new_peer_connection()
        receivers: dict[str, VideoReceiver] = {}
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
        for rung in sizes:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            transceiver.setCodecPreferences(h264)
            receiver = VideoReceiver(transceiver.receiver, functools.partial(self._on_video, rung))
            receiver.install()
            receivers[rung] = receiver
        AudioTap(pc.addTransceiver("audio", direction="recvonly").receiver, self._on_audio).install()
        channel = pc.createDataChannel("cards")
        channel.on("message", self._on_message)
        connection = PullConnection(self.id, self.stream.name, pc, list(receivers.values()), self._setup_s)
        location = None
        try:
            await pc.setLocalDescription(await pc.createOffer())
            url = f"{origin}/cluster/pull/{self.stream.name}"
            params = {"rungs": ",".join(sizes), "node": self._node_id}
            headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {self._token}"}
            timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
            async with self._http.post(
                url, params=params, data=pc.localDescription.sdp, headers=headers, timeout=timeout
            ) as res:
                body = await res.text()
                if res.status != 201:
                    raise ValueError(f"POST {url} -> {res.status} {body.strip()[:200]}")
                location = str(res.url.join(URL(res.headers["Location"])))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        except BaseException:
            await close_quietly(pc, self.label)
            raise
        self.pulls += 1
        self.last_error = None
        self._receivers = receivers
        self._counters = {rung: self._counters.get(rung) or RungCounters() for rung in sizes}
        if sizes != self.sizes:
            self.sizes = dict(sizes)
            self.stream.on_upstream_rungs(self.sizes)
        self._connection = connection
        self._channel = channel
        connection.start()
        self._schedule_talk()  # the audience (and anything said meanwhile) for the new pull
        log.info("%s: pulling %s from %s", self.label, ", ".join(sizes), origin)
        try:
            await connection.ended.wait()
            log.info("%s: the pull ended (%s); pulling again", self.label, connection.reason)
        finally:
            self._connection = None
            self._channel = None
            if self.talk.waiting:
                self._talk_broke("the connection to the stream's origin broke")
            await connection.close("pull stopped")
            if location is not None:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with self._http.delete(location, timeout=aiohttp.ClientTimeout(total=1.0)):
                        pass

    # ---- what arrives ---------------------------------------------------------------------------
    def _on_video(self, rung: str, frame: AssembledFrame) -> None:
        unwrap = self._video_pts.get(rung)
        if unwrap is None:
            unwrap = self._video_pts[rung] = Unwrap()
        counters = self._counters.get(rung)
        if counters is not None:
            counters.frames += 1
            counters.bytes += len(frame.data)
            counters.keyframes += frame.keyframe
        self.stream.on_upstream_frame(EncodedFrame("video", rung, frame.data, unwrap(frame.timestamp), frame.keyframe))

    def _on_audio(self, payload: bytes, timestamp: int) -> None:
        self.stream.on_upstream_frame(EncodedFrame("audio", "audio", payload, self._audio_pts(timestamp), True))

    def _on_message(self, text: str | bytes) -> None:
        """The origin's broadcasts: state, the card snapshot and events (mirrored with their seq
        and pts_ms), and the rest (talk) passed to the edge's viewers as they are."""
        if isinstance(text, bytes) or len(text) > MAX_MESSAGE:
            return
        try:
            message = json.loads(text)
            kind = message.get("type")
            if kind == "stream":
                self.stream.on_upstream_phase(message["state"])
            elif kind == "snapshot":
                cards = [parse_card(c) for c in message["cards"]]
                self.stream.cards.mirror_snapshot(int(message["seq"]), cards)
            elif kind == "card":
                event = CardEvent(
                    int(message["seq"]),
                    message["action"],
                    parse_card(message["card"]),
                    int(message["pts_ms"]),
                    float(message["sent_at"]),
                )
                self.stream.cards.mirror(event)
            elif kind == "comment_pinned":
                pinned = message["comment"]
                self.stream.talk.mirror_pinned(text, None if pinned is None else int(pinned["id"]))
                self.stream.broadcast(text)
            elif kind == Bans.type:
                self.stream.talk.mirror_bans(parse_bans(message))
            elif kind == ToViewers.type:
                self.stream.to_viewers(parse_to_viewers(message))
            elif kind == "bye":
                if self._connection is not None:
                    self._connection.close_soon(f"the origin said bye: {message.get('reason')}")
            elif kind not in ("rendition", "clock", "error"):
                self.stream.broadcast(text)
        except (ValueError, KeyError, TypeError, AttributeError, LiveCartError) as exc:  # BadMessage too
            log.warning("%s: a message from the origin made no sense (%s): %.80s", self.label, exc, text)
