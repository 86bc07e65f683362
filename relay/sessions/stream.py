"""One configured stream: its transcoder, fan-out, current publisher and viewers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ingest.errors import LiveCartError
from relay.cards.board import CardBoard, CardEvent
from relay.cards.card import card_json
from relay.cards.feed import CardFeed, FeedItem, offer
from relay.cards.store import CardStore
from relay.config import HlsConfig, RecordingConfig, StreamConfig, TranscodeConfig
from relay.errors import Forbidden, MediaNotFound, SessionNotFound
from relay.hls.library import RecordingLibrary
from relay.hls.packager import StreamHls
from relay.identity import Identity, guest
from relay.identity import verify as verify_viewer_token
from relay.media.fanout import Fanout
from relay.media.feedback import Feedback
from relay.messages import (
    BadMessage,
    BuyClick,
    Clock,
    EdgeTalk,
    ErrorMessage,
    Like,
    PostComment,
    RenditionChanged,
    ServerMessage,
    StreamPhase,
    StreamState,
    encode,
    encode_to_viewers,
    parse_edge_talk,
    parse_viewer_message,
)
from relay.sessions.analytics import Sessions, SessionStats
from relay.sessions.rungs import RungChoice, ladder_for, ladder_rung, rung_for_codec
from relay.sessions.sendside import SendSideControl
from relay.sessions.viewer import ViewerSession
from relay.talk.comments import CommentRules
from relay.talk.feed import TalkFeed
from relay.talk.reviewer import Reviewer
from relay.talk.store import TalkStore
from transcode.frames import AAC, H264, VP8, EncodedFrame, EncoderStats
from transcode.pipeline import StreamTranscoder

log = logging.getLogger(__name__)

MAX_VIEWER_MESSAGE = 1024  # a viewer only ever sends small control messages
MAX_EDGE_MESSAGE = 64 * 1024  # an edge's edge_talk (relay.talk.forward keeps them under half that)


class Publisher(Protocol):
    """What a stream needs of its publisher: a WHIP session or the demo source."""

    id: str

    @property
    def label(self) -> str: ...

    @property
    def task_count(self) -> int: ...

    def ingest_stats(self) -> dict[str, object] | None: ...

    async def close(self, reason: str) -> None: ...


class FrameSource(Protocol):
    """Where an edge's frames come from instead of a transcoder: its pull of the origin
    (``relay.sessions.upstream``). Keyframe requests go to it; it reports the rungs it carries;
    the viewers' comments and likes go through it to the origin, which owns the conversation."""

    sizes: dict[str, tuple[int, int]]

    def request_keyframe(self, rung: str) -> None: ...

    def stats(self) -> list[EncoderStats]: ...

    def comment(self, viewer_id: str, who: Identity, text: object) -> None: ...

    def like(self, count: object, gift: object = None) -> None: ...

    def relay_talk(self, pull_id: str, talk: EdgeTalk) -> list[str]: ...

    def audience(self, viewers: int, *, joined: bool) -> None: ...

    def click(self, viewer_id: str, card: str) -> None: ...

    def below_gone(self, pull_id: str) -> None: ...


class Stream:
    """Owns one stream's transcoder and fan-out; tracks who publishes, who watches which rung.

    Viewers stay connected while the stream is offline and resume at the next keyframe when
    a publisher returns; the ``cards`` channel tells them ``{"type": "stream", "live": ...}``.
    """

    def __init__(
        self,
        config: StreamConfig,
        transcode: TranscodeConfig,
        *,
        hls: HlsConfig | None = None,
        board: CardBoard | None = None,
        store: CardStore | None = None,
        store_pool: ThreadPoolExecutor | None = None,
        talk_store: TalkStore | None = None,
        recording: RecordingConfig | None = None,
        recordings: RecordingLibrary | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._t0 = time.monotonic()
        self.ladder = ladder_for(config, transcode)
        self.rungs = RungChoice(self.ladder)
        self.transcoder = StreamTranscoder(
            config.name,
            self.ladder,
            clock=self.media_time,
            on_frame=self._on_frame,
            on_rungs=self._on_rungs,
            keyframe_min_interval_s=transcode.keyframe_min_interval_ms / 1000,
            audio_kbps=transcode.audio_kbps,
            encoder_threads=transcode.encoder_threads,
            on_media=self._on_media,
            aac_kbps=hls.audio_kbps if hls is not None and hls.enabled else None,
        )
        # An edge's stream is fed by its pull of the origin (``use_upstream``); its transcoder idles.
        self.upstream: FrameSource | None = None
        self._upstream_offline = False  # the origin says its stream is offline
        # LL-HLS out of the same encoded frames (None: [hls] enabled = false).
        self.hls: StreamHls | None = None
        if hls is not None and hls.enabled:
            self.hls = StreamHls(
                config.name,
                hls,
                fps=transcode.fps,
                wall_at_zero=time.time() - self.media_time(),
                rung_kbps=lambda name: self.rungs.kbps.get(name, 0),
                request_keyframe=self.transcoder.request_keyframe,
                recordings=recordings if recording is not None and recording.enabled else None,
                record_rungs=recording.rungs if recording is not None else (),
            )
        self.fanout = Fanout(
            self._request_keyframe,
            self._on_switched,
            keyframe_min_interval_s=transcode.keyframe_min_interval_ms / 1000,
            clock=time.monotonic,
            on_broken=self._viewer_broken,
        )
        self.sendside = SendSideControl(
            config.name,
            self.fanout,
            self.rungs,
            self._auto_switch,
            rung_bytes=lambda: {s.rung: s.bytes_out for s in self.encoder_stats()},
            audio_bps=transcode.audio_kbps * 1000,
        )
        self.publisher: Publisher | None = None
        self._media = False  # whether the current publisher's video has arrived (see ``state``)
        self.viewers: dict[str, ViewerSession] = {}
        # Edges pulling this stream (origin side, ``relay.sessions.pullserve``): they get every
        # broadcast (cards, state, talk) like viewers, but are no viewers of any rung.
        self.pulls: dict[str, ViewerSession] = {}
        # SSE subscribers that follow one viewer's clock (``/events?viewer=``), by viewer id.
        self._clock_watchers: dict[str, set[asyncio.Queue[FeedItem]]] = {}
        self._vp8_viewers: set[str] = set()  # viewers whose offer had no H.264: they watch VP8 rungs
        self._reported_loss: dict[str, float] = {}  # each viewer's latest receiver-report loss fraction
        self.viewer_keyframe_requests = 0  # PLI/FIR received
        # Totals over every viewer the stream had (the per-viewer figures go with their viewer).
        self.auto_switches: dict[str, int] = {}  # ABR moves, by the rung moved to
        self._refused_gone = 0  # retransmissions refused to viewers that have left
        self.pull_keyframe_requests = 0  # PLI/FIR from pulling edges
        self.bad_viewer_messages = 0  # data-channel messages from viewers that meant nothing
        self.bad_edge_messages = 0  # pull-channel messages from edges that meant nothing
        self.cards = CardFeed(
            config.name,
            board or CardBoard(),
            store=store,
            store_pool=store_pool,
            pts_ms=self.pts_ms,
            deliver=self.broadcast,
            on_event=self._on_card,
        )
        # The shop's counts, session by session (GET .../stats).
        self.sessions = Sessions(time.monotonic(), gap_s=config.session_gap_s)
        self._talk_seen = (0, 0)  # comments accepted and likes counted at the last analytics tick
        self.talk = TalkFeed(
            config.name,
            CommentRules(words=config.chat_words, anonymous=config.chat_anonymous),
            store=talk_store,
            store_pool=store_pool,
            pts_ms=self.pts_ms,
            broadcast=self.broadcast,
            on_screen_titles=lambda: [c.title for c in self.cards.board.on_screen()],
            tell_nodes=self.to_pulls,
            reviewer=None
            if config.chat_review is None
            else Reviewer(
                config.name,
                config.chat_review,
                deadline_s=config.chat_review_timeout_s,
                fail_open=config.chat_review_fail_open,
            ),
        )

    def start(self) -> None:
        if self.hls is not None:
            self.hls.start()
            pts_ms = self.pts_ms()
            for card in self.cards.board.on_screen():  # restored from the store: on screen since now
                self.hls.on_card(self.cards.board.last_seq, "show", card.id, card_json(card), pts_ms)
        self.transcoder.start()
        self.talk.start()
        self.sendside.start()

    def pts_ms(self) -> int:
        """What a card action is stamped with: a media time (ms) just after the video frame being
        sent now, so the card lands on the next frame. Its event then leaves before that frame's
        packets; stamped with the frame already sent, it raced that frame to the player and was
        one frame late whenever the frame won."""
        last = self.fanout.last_video_pts()
        return last // 90 + 1 if last is not None else round(self.media_time() * 1000)

    def media_time(self) -> float:
        """Seconds since the stream object was created: the stream's media clock."""
        return time.monotonic() - self._t0

    @property
    def live(self) -> bool:
        """A publisher holds the stream (sending, or still connecting): what admission counts."""
        return self.publisher is not None

    @property
    def analytics(self) -> SessionStats:
        """The current session's counts."""
        return self.sessions.current

    @property
    def state(self) -> StreamPhase:
        """What viewers and the API are told: "offline", "connecting" (a publisher holds the
        stream but no video has arrived, e.g. its DTLS is still being set up) or "live"."""
        if self.publisher is None or self._upstream_offline:
            return "offline"
        return "live" if self._media else "connecting"

    def check_viewer_token(self, token: str | None, now: float) -> Identity:
        """Who the viewer is: protected streams (``viewer_secret`` set) need a signed, unexpired
        token naming it; open streams take anyone, as a guest."""
        secret = self.config.viewer_secret
        identity = guest() if secret is None else verify_viewer_token(secret, self.name, token, now)
        if self.talk.policy.is_banned(identity.sub):
            raise Forbidden("you are banned from this stream")
        return identity

    def check_rendition(self, requested: str) -> str:
        return self.rungs.check(requested)

    # ---- frames -----------------------------------------------------------------------------
    def _on_frame(self, frame: EncodedFrame) -> None:
        if frame.codec != AAC:  # AAC is for HLS only; WebRTC viewers get Opus
            self.fanout.publish(frame)
        if self.hls is not None:
            self.hls.publish(frame)

    def _on_card(self, event: CardEvent) -> None:
        now = time.monotonic()
        if event.action == "show":
            self.analytics.card_shown(event.card.id, event.card.title, now)
        elif event.action in ("hide", "delete"):
            self.analytics.card_hidden(event.card.id, now)
        if self.hls is not None:
            self.hls.on_card(event.seq, event.action, event.card.id, card_json(event.card), event.pts_ms)

    def hls_or_404(self) -> StreamHls:
        if self.hls is None:
            raise MediaNotFound("HLS is off on this server ([hls] enabled = false)")
        return self.hls

    def request_rung_keyframe(self, rung: str) -> None:
        """An IDR on ``rung`` (from its encoder, or on an edge from the origin)."""
        self._request_keyframe(rung)

    def _request_keyframe(self, rung: str) -> None:
        if self.upstream is not None:
            self.upstream.request_keyframe(rung)
        else:
            self.transcoder.request_keyframe(rung)

    def encoder_stats(self) -> list[EncoderStats]:
        """Each rung's counters: the transcoder's, or on an edge what its pull received."""
        return self.upstream.stats() if self.upstream is not None else self.transcoder.stats()

    def sizes(self) -> dict[str, tuple[int, int]]:
        return self.upstream.sizes if self.upstream is not None else self.transcoder.sizes

    # ---- an edge's stream: the origin's frames, as its transcoder would deliver them ------------
    def use_upstream(self, source: FrameSource | None) -> None:
        self.upstream = source
        self._upstream_offline = False

    def on_upstream_rungs(self, sizes: dict[str, tuple[int, int]]) -> None:
        self._on_rungs(dict(sizes))

    def on_upstream_frame(self, frame: EncodedFrame) -> None:
        if frame.kind == "video" and not self._media:
            self._on_media()
        self.fanout.publish(frame)

    def on_upstream_phase(self, phase: StreamPhase) -> None:
        """The origin's stream went offline, is connecting, or is live: the edge says the same."""
        was = self.state
        self._upstream_offline = phase == "offline"
        if phase != "live":
            self._media = False
        if was != self.state:
            log.info("stream %s is %s (at its origin)", self.name, self.state)
            self.broadcast(self.state_message())

    def _on_rungs(self, sizes: dict[str, tuple[int, int]]) -> None:
        for pull in list(self.pulls.values()):
            if getattr(pull, "rungs", None) != sizes:  # the edge pulls again, for the new rungs
                self.pulls.pop(pull.id, None)
                pull.close_soon("the stream's rungs changed")
        if self.hls is not None:
            self.hls.set_rungs(sizes)
        targets = self.rungs.set_encoded(sizes, time.monotonic())
        self.fanout.remap([*sizes, *(rung_for_codec(n, VP8) for n in sizes)], self._nearest)
        for viewer_id, target in targets.items():
            self._switch(viewer_id, target)

    def _nearest(self, name: str) -> str:
        """The encoded rung nearest to ``name``, in the codec ``name`` is of."""
        nearest = self.rungs.nearest(ladder_rung(name))
        if name == ladder_rung(name):
            return nearest
        self.transcoder.want_vp8(nearest)
        return rung_for_codec(nearest, VP8)

    def _switch(self, viewer_id: str, rung: str) -> None:
        """Move a viewer to ladder rung ``rung``, in its codec (a VP8 encoder starts on demand)."""
        if viewer_id in self._vp8_viewers:
            self.transcoder.want_vp8(rung)
            rung = rung_for_codec(rung, VP8)
        if self.fanout.rung_of(viewer_id) != rung:
            self.fanout.switch(viewer_id, rung)

    def vp8_demand(self) -> set[str]:
        """The ladder rungs some VP8 viewer watches or is moving to: the VP8 encoders worth running."""
        return {ladder_rung(rung) for v in self._vp8_viewers if (rung := self.fanout.rung_of(v)) is not None}

    async def stop_unwatched_encoders(self) -> None:
        """Stop VP8 encoders no viewer needs any more (after a viewer left or switched)."""
        if self.transcoder.vp8 or self._vp8_viewers:
            await self.transcoder.set_vp8(self.vp8_demand())

    def _viewer_broken(self, viewer_id: str, reason: str) -> None:
        session_id = viewer_id.split("/", 1)[0]  # a pull's members are "{session}/{rung}"
        viewer = self.viewers.get(viewer_id) or self.pulls.get(session_id)
        log.warning("stream %s: sending to viewer %s failed (%s); closing it", self.name, viewer_id[:8], reason)
        if viewer is not None:
            viewer.close_soon(f"send failed: {reason}")

    def _on_switched(self, viewer_id: str, rung: str) -> None:
        log.debug("viewer %s/%s: now on %s", self.name, viewer_id[:8], rung)
        viewer = self.viewers.get(viewer_id)
        if viewer is not None:
            # The clock first: the switch's first frame is already on its way, and a player holds
            # back what it cannot time until it knows the mapping that frame is on.
            self._tell_clock(viewer)
            viewer.send(self._rendition_message(viewer_id, rung))

    def _rendition_message(self, viewer_id: str, rung: str) -> str:
        """What a viewer is told about its rung: name, size, and whether it is on auto."""
        width, height = self.sizes().get(ladder_rung(rung), (0, 0))
        return encode(RenditionChanged(rung, width, height, self.rungs.is_auto(viewer_id)))

    # ---- publisher ----------------------------------------------------------------------------
    def state_message(self) -> str:
        return encode(self._state())

    def _state(self) -> StreamState:
        state = self.state
        return StreamState(self.name, state == "live", state)

    def to_pulls(self, message: str) -> None:
        """Send one message to the edges pulling this stream only (never to viewers)."""
        for pull in self.pulls.values():
            pull.send(message)

    def broadcast(self, message: str) -> None:
        """Send one serialised message (``relay.messages.encode``) to every viewer."""
        for viewer in self.viewers.values():
            viewer.send(message)
        for pull in self.pulls.values():
            pull.send(message)

    def set_publisher(self, publisher: Publisher | None, *, record: bool = True) -> None:
        """``record``: the publisher's session is recorded (not the built-in demo's)."""
        was = self.state
        self.publisher = publisher
        if self.hls is not None:
            self.hls.on_publisher(publisher is not None and record)
        self._media = False
        self._upstream_offline = False
        if was != self.state:
            log.info("stream %s is %s", self.name, self.state)
            self.broadcast(self.state_message())
        if was == "live" and self.state != "live":
            self.sessions.went_offline(time.monotonic())

    def _on_media(self) -> None:
        """The publisher's first video frame: only now is the stream live."""
        if self.publisher is not None and not self._media:
            self._media = True
            log.info("stream %s is live", self.name)
            self.broadcast(self.state_message())
            if self.sessions.went_live(time.monotonic()):
                log.info("stream %s: analytics session %d starts", self.name, self.sessions.number)

    # ---- viewers --------------------------------------------------------------------------------
    def greeting(self, viewer: ViewerSession) -> list[str]:
        """What a viewer's ``cards`` channel gets on open: stream state, card snapshot, clock, and
        the rung it watches once it gets video."""
        clock = self.clock(viewer)
        snapshot = self.cards.board.snapshot()
        messages: list[ServerMessage] = [self._state()]
        if clock is None:
            messages.append(snapshot)
        else:
            messages += [dataclasses.replace(snapshot, clock=clock), clock]
        out = [encode(m) for m in messages]
        if self.talk.pinned is not None:
            out.append(self.talk.pinned)
        rung = viewer.tracks.rung
        if rung is not None:
            # Its first rung took effect before the channel opened (the media path is faster
            # than SCTP's setup), when that announcement had nowhere to go.
            out.append(self._rendition_message(viewer.id, rung))
        return out

    def clock(self, viewer: ViewerSession) -> Clock | None:
        """How this viewer's RTP timestamps map to media time (``pts_ms`` of cards): the anchor of
        its current mapping, once it has been sent video."""
        anchor = viewer.tracks.video.rewriter.anchor
        return None if anchor is None else Clock(rtp=anchor[1], media_ts=anchor[0])

    def _tell_clock(self, viewer: ViewerSession) -> None:
        clock = self.clock(viewer)
        if clock is None:
            return
        viewer.send(encode(clock))
        for queue in self._clock_watchers.get(viewer.id, ()):
            offer(queue, clock)

    def watch_clock(self, viewer_id: str, queue: asyncio.Queue[FeedItem]) -> Clock | None:
        """An SSE subscriber follows viewer ``viewer_id``'s clock (the player of a WHEP session
        without a data channel); returns the clock now. SessionNotFound for no such viewer."""
        viewer = self.viewers.get(viewer_id)
        if viewer is None:
            raise SessionNotFound(f"no viewer session {viewer_id[:8]}… on stream {self.name!r}")
        self._clock_watchers.setdefault(viewer_id, set()).add(queue)
        return self.clock(viewer)

    def unwatch_clock(self, viewer_id: str, queue: asyncio.Queue[FeedItem]) -> None:
        watchers = self._clock_watchers.get(viewer_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._clock_watchers[viewer_id]

    def tick_analytics(self, now: float) -> None:
        """Once a second: the comments and likes counted since the last tick, into the analytics."""
        comments, likes = self.talk.policy.accepted, self.talk.likes.total
        seen_comments, seen_likes = self._talk_seen
        if comments > seen_comments:
            self.analytics.commented(comments - seen_comments, now)
        if likes > seen_likes:
            self.analytics.liked(likes - seen_likes, now)
        self._talk_seen = (comments, likes)

    def add_viewer(self, viewer: ViewerSession, rendition: str, codec: str = H264) -> None:
        """``codec`` VP8: a viewer whose offer has no H.264 watches the VP8 rendition of its rung."""
        rung = self.rungs.add(viewer.id, rendition)
        self.viewers[viewer.id] = viewer
        self.analytics.joined(time.monotonic())
        if self.upstream is not None:  # an edge: the origin's analytics count its viewers too
            self.upstream.audience(len(self.viewers), joined=True)
        if codec == VP8:
            self._vp8_viewers.add(viewer.id)
            self.transcoder.want_vp8(rung)
            rung = rung_for_codec(rung, VP8)
        self.fanout.attach(viewer.id, viewer.tracks, rung)

    def remove_viewer(self, viewer_id: str) -> None:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is not None:
            self._refused_gone += viewer.tracks.video.repair.refused
            self.analytics.left(time.monotonic())
            if self.upstream is not None:
                self.upstream.audience(len(self.viewers), joined=False)
        self._vp8_viewers.discard(viewer_id)
        self.rungs.remove(viewer_id)
        self._reported_loss.pop(viewer_id, None)
        self.sendside.forget(viewer_id)
        self.fanout.detach(viewer_id)
        for queue in self._clock_watchers.pop(viewer_id, ()):
            offer(queue, None)  # its SSE stream ends; a reconnect for a gone viewer gets 404

    def on_viewer_message(self, viewer: ViewerSession, text: str | bytes) -> None:
        """A control message on a viewer's ``cards`` channel (never trusted, never raises)."""
        try:
            if isinstance(text, bytes) or len(text) > MAX_VIEWER_MESSAGE:
                raise BadMessage("viewers send short JSON text")
            request = parse_viewer_message(text)
            if isinstance(request, PostComment):
                if self.upstream is not None:  # an edge: the origin decides, its echo comes back
                    self.upstream.comment(viewer.id, viewer.identity, request.text)
                else:
                    self.talk.post(viewer.identity, request.text, echo=viewer.send)
                return
            if isinstance(request, Like):
                if self.upstream is not None:
                    self.upstream.like(request.count, request.gift)
                else:
                    self.talk.like(request.count, request.gift)
                return
            if isinstance(request, BuyClick):
                self.analytics.click(viewer.id, request.card, time.monotonic())
                if self.upstream is not None:
                    self.upstream.click(viewer.id, request.card)
                return
            target = self.rungs.choose(viewer.id, request.name)
        except BadMessage:
            self.bad_viewer_messages += 1
            return
        except LiveCartError as exc:  # a refused comment, like or rendition: the viewer is told why
            viewer.send(encode(ErrorMessage(exc.reason, exc.status)))
            return
        if target is None:
            return
        log.info("viewer %s/%s: rendition %s -> %s", self.name, viewer.id[:8], request.name, target)
        self._switch(viewer.id, target)
        if not self.fanout.is_switching(viewer.id):
            # Already on that rung: no switch will be announced, so say it now (e.g. "auto" chosen
            # while the policy wants the current rung).
            viewer.send(self._rendition_message(viewer.id, self.fanout.rung_of(viewer.id) or target))

    def on_edge_message(self, pull: ViewerSession, text: str | bytes) -> None:
        """A message on an edge's pull channel (origin side): its viewers' talk (``edge_talk``),
        answered with ``to_viewers``. Never raises; what makes no sense is counted and logged."""
        try:
            if isinstance(text, bytes) or len(text) > MAX_EDGE_MESSAGE:
                raise BadMessage(f"an edge sends JSON text of at most {MAX_EDGE_MESSAGE} bytes")
            talk = parse_edge_talk(text)
        except BadMessage as exc:
            self.bad_edge_messages += 1
            log.warning("stream %s: a message from %s made no sense: %s", self.name, pull.label, exc.reason)
            return
        if self.upstream is not None:  # a relay: the origin decides, further up
            refused = self.upstream.relay_talk(pull.id, talk)
            if refused:
                error = encode(ErrorMessage("comments are paused: this relay is reconnecting to the origin", 503))
                pull.send(encode_to_viewers([(ref, error) for ref in refused]))
            return
        self.talk.from_edge(talk, lambda items: pull.send(encode_to_viewers(items)))
        now = time.monotonic()
        self.analytics.remote(pull.id, talk.viewers, talk.joins, now)
        for ref, card in talk.clicks:
            self.analytics.click(f"{pull.id}/{ref}", card, now)

    def pull_ended(self, pull_id: str) -> None:
        """An edge's pull of this stream ended: its viewers leave the analytics (on a relay, the
        counts it passes up)."""
        self.pulls.pop(pull_id, None)
        if self.upstream is not None:
            self.upstream.below_gone(pull_id)
        else:
            self.analytics.remote_gone(pull_id, time.monotonic())

    def to_viewers(self, items: list[tuple[str, str]]) -> None:
        """Replies for single viewers (edge side: the origin's echoes of their comments); on a
        relay, ``pull/ref`` names a viewer of the edge pulling as ``pull``."""
        onward: dict[str, list[tuple[str, str]]] = {}
        for ref, message in items:
            pull_id, slash, inner = ref.partition("/")
            if slash:
                onward.setdefault(pull_id, []).append((inner, message))
            elif (viewer := self.viewers.get(ref)) is not None:
                viewer.send(message)
        for pull_id, replies in onward.items():
            if (pull := self.pulls.get(pull_id)) is not None:
                pull.send(encode_to_viewers(replies))

    def on_viewer_feedback(self, viewer_id: str, feedback: Feedback) -> None:
        abr = self.rungs.abr_of(viewer_id)
        if abr is None:
            return
        if feedback.keyframe_request:
            self.viewer_keyframe_requests += 1
            rung = self.fanout.rung_of(viewer_id)
            if rung is not None:
                self._request_keyframe(rung)
            return
        now = time.monotonic()
        tracks = self.fanout.tracks(viewer_id)
        if tracks is not None and feedback.rtt_s is not None:
            tracks.video.repair.rtt_s = max(0.02, feedback.rtt_s)
        if feedback.loss is not None:
            self._reported_loss[viewer_id] = feedback.loss
        if tracks is not None and tracks.video.bwe is not None:
            return  # transport-cc: the send-side estimate decides (on_viewer_tcc), not REMB
        if feedback.remb_bps is not None:
            decision = abr.on_remb(feedback.remb_bps, now)
            if tracks is not None:
                tracks.video.repair.set_rate(feedback.remb_bps, now)
        elif feedback.loss is not None:
            decision = abr.on_loss(feedback.loss, now)
        else:
            return
        decision = self.rungs.auto_decision(viewer_id, decision)
        if decision is not None:
            log.info("viewer %s/%s: auto -> %s", self.name, viewer_id[:8], decision)
            self.auto_switches[decision] = self.auto_switches.get(decision, 0) + 1
            self._switch(viewer_id, decision)

    def on_viewer_tcc(self, viewer_id: str, fci: bytes) -> None:
        """Transport-cc feedback from a viewer: the send-side estimate and its decisions."""
        self.sendside.on_tcc(viewer_id, fci)

    def _auto_switch(self, viewer_id: str, rung: str, why: str) -> None:
        log.info("viewer %s/%s: auto -> %s (%s)", self.name, viewer_id[:8], rung, why)
        self.auto_switches[rung] = self.auto_switches.get(rung, 0) + 1
        current = self.fanout.rung_of(viewer_id)
        names = self.rungs.names  # highest first
        down = current is not None and ladder_rung(current) in names and rung in names
        down = down and names.index(rung) > names.index(ladder_rung(current or ""))
        if viewer_id in self._vp8_viewers:  # in the viewer's codec: a VP8 viewer moves to a VP8 rung
            self.transcoder.want_vp8(rung)
            rung = rung_for_codec(rung, VP8)
        # Down on the send-side estimate means the link is full: hold the current rung's frames
        # back so that the queue drains before the new rung's keyframe (see Fanout.switch).
        self.fanout.switch(viewer_id, rung, hold=down)

    # ---- introspection ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.name,
            "live": self.state == "live",
            "state": self.state,
            "publisher": self.publisher.id[:8] if self.publisher is not None else None,
            # The publisher's video receive path: loss, NACKs, keyframe requests, late/skipped frames.
            "ingest": self.publisher.ingest_stats() if self.publisher is not None else None,
            "viewers": len(self.viewers),
            "rungs": [
                {
                    "name": s.rung,
                    "codec": s.codec,
                    "width": s.width,
                    "height": s.height,
                    "viewers": self.fanout.viewers_on(s.rung),
                    "kbps_target": s.kbps or self.rungs.kbps.get(s.rung, 0),  # scaled by the picture's area
                    "frames_in": s.frames_in,
                    "frames_out": s.frames_out,
                    "frames_dropped": s.frames_dropped,
                    "encode_calls": s.encode_calls,
                    "keyframes": s.keyframes,
                    "keyframes_forced": s.keyframes_forced,
                    "bytes_out": s.bytes_out,
                    "encode_ms_total": s.encode_ms_total,
                    "passthrough": s.passthrough,
                }
                for s in self.encoder_stats()
            ],
            "pulls": [{"id": p.id[:8], "node": getattr(p, "node", None)} for p in self.pulls.values()],
            "frames_forwarded": self.fanout.frames_forwarded,
            "packets_forwarded": self.fanout.packets_forwarded,
            "bytes_forwarded": self.fanout.bytes_forwarded,
            "packets_sent": sum(link.sent for link in self.fanout.links()),
            "packets_dropped": sum(link.dropped for link in self.fanout.links()),
            "packets_retransmitted": self.fanout.retransmitted,
            "repairs_held": self.fanout.repairs_held,
            "retransmissions_refused": self._refused_gone
            + sum(v.tracks.video.repair.refused for v in self.viewers.values()),
            "probe_bytes": self.fanout.probe_bytes,
            "probes_confirmed": self.sendside.probes_ok,
            "probes_failed": self.sendside.probes_failed,
            "transport_cc_feedback": self.sendside.feedback,
            "bad_transport_cc_feedback": self.sendside.bad_feedback,
            "rung_switches": sum(self.auto_switches.values()),
            "rung_switches_to": dict(self.auto_switches),
            "abr": [self.sendside.viewer_snapshot(viewer_id) for viewer_id in self.viewers],
            "viewer_send_errors": self.fanout.send_errors,
            "nack_reports": self.fanout.nack_reports,
            "packets_nacked": self.fanout.nacked_packets,
            "viewer_keyframe_requests": self.viewer_keyframe_requests,
            "join_keyframe_requests": self.fanout.keyframe_requests,
            "bad_viewer_messages": self.bad_viewer_messages,
            "bad_edge_messages": self.bad_edge_messages,
            "audio_frames_dropped": self.transcoder.audio_frames_dropped,
            "aac_frames_dropped": self.transcoder.aac_frames_dropped,
            "aac_encode_ms": self.transcoder.aac_encode_ms,
            "viewer_loss_mean": (sum(losses) / len(losses)) if (losses := list(self._reported_loss.values())) else 0.0,
            "viewer_loss_max": max(self._reported_loss.values(), default=0.0),
            "card_actions": self.cards.actions,
            "hls": self.hls.snapshot() if self.hls is not None else None,
        }

    async def close(self) -> None:
        await self.talk.close()
        await self.sendside.close()
        await self.transcoder.close()
        if self.hls is not None:
            await self.hls.close()
