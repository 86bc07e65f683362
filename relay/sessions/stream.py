"""One configured stream: its transcoder, fan-out, current publisher and viewers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from relay.cards.board import CardBoard
from relay.cards.feed import CardFeed
from relay.cards.store import CardStore
from relay.config import StreamConfig, TranscodeConfig
from relay.errors import BadRequest
from relay.media.fanout import Fanout
from relay.media.feedback import Feedback
from relay.sessions.abr import AbrPolicy, RungRate
from relay.sessions.tokens import verify as verify_viewer_token
from relay.sessions.viewer import ViewerSession
from transcode.frames import EncodedFrame
from transcode.pipeline import StreamTranscoder
from transcode.rendition import Rendition

log = logging.getLogger(__name__)

AUTO = "auto"


class Publisher(Protocol):
    """What a stream needs of its publisher: a WHIP session or the demo source."""

    id: str

    @property
    def label(self) -> str: ...

    @property
    def task_count(self) -> int: ...

    async def close(self, reason: str) -> None: ...


def ladder_for(stream: StreamConfig, transcode: TranscodeConfig) -> list[Rendition]:
    """The stream's rungs (its own ladder or the global one), capped at the configured size in
    either orientation (a rung is named by its short side, so 720x1280 is as big as 1280x720)."""
    gop = max(1, round(transcode.gop_s * transcode.fps))
    cap_long, cap_short = max(transcode.max_width, transcode.max_height), min(transcode.max_width, transcode.max_height)
    rungs = [
        Rendition(name, width, height, kbps, transcode.fps, gop)
        for name, width, height, kbps in (stream.ladder or transcode.ladder)
        if max(width, height) <= cap_long and min(width, height) <= cap_short
    ]
    if not rungs:
        raise ValueError(f"stream {stream.name}: no ladder rung fits {transcode.max_width}x{transcode.max_height}")
    return rungs


class ViewerChoice:
    """A viewer's rendition wish: a fixed rung, or ``auto`` with its own ABR policy."""

    __slots__ = ("abr", "fixed")

    def __init__(self, fixed: str | None, abr: AbrPolicy) -> None:
        self.fixed = fixed
        self.abr = abr


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
        board: CardBoard | None = None,
        store: CardStore | None = None,
        store_pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._loop = loop
        self.ladder = ladder_for(config, transcode)
        self._kbps = {r.name: r.video_kbps for r in self.ladder}
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
        )
        self.fanout = Fanout(
            self.transcoder.request_keyframe,
            self._on_switched,
            keyframe_min_interval_s=transcode.keyframe_min_interval_ms / 1000,
            on_broken=self._viewer_broken,
        )
        self.publisher: Publisher | None = None
        self._media = False  # whether the current publisher's video has arrived (see ``state``)
        self.viewers: dict[str, ViewerSession] = {}
        self._choices: dict[str, ViewerChoice] = {}
        self._reported_loss: dict[str, float] = {}  # each viewer's latest receiver-report loss fraction
        self.viewer_keyframe_requests = 0  # PLI/FIR received
        self.cards = CardFeed(
            config.name,
            board or CardBoard(),
            store=store,
            store_pool=store_pool,
            pts_ms=self.pts_ms,
            deliver=self.broadcast,
        )

    def pts_ms(self) -> int:
        """Media time (ms) of the video frame being sent now: what a card action is stamped with."""
        last = self.fanout.last_video_pts()
        return last // 90 if last is not None else round(self.media_time() * 1000)

    def media_time(self) -> float:
        """Seconds since the stream object was created: the stream's media clock."""
        return self._loop.time() - self._t0

    @property
    def live(self) -> bool:
        """A publisher holds the stream (sending, or still connecting): what admission counts."""
        return self.publisher is not None

    @property
    def state(self) -> str:
        """What viewers and the API are told: "offline", "connecting" (a publisher holds the
        stream but no video has arrived, e.g. its DTLS is still being set up) or "live"."""
        if self.publisher is None:
            return "offline"
        return "live" if self._media else "connecting"

    def available_rungs(self) -> list[str]:
        """Rungs being encoded now, highest first; the whole ladder while nothing is encoded."""
        return list(self.transcoder.sizes) or [r.name for r in self.ladder]

    def _rates(self) -> list[RungRate]:
        return [RungRate(name, self._kbps[name]) for name in self.available_rungs()]

    def _nearest(self, wanted: str) -> str:
        """``wanted`` if it is encoded, else the next lower encoded rung, else the lowest."""
        available = self.available_rungs()
        if wanted in available:
            return wanted
        names = [r.name for r in self.ladder]
        below = names[names.index(wanted) + 1 :] if wanted in names else []
        return next((n for n in below if n in available), available[-1])

    def check_viewer_token(self, token: str | None, now: float) -> None:
        """Protected streams (``viewer_secret`` set) need a signed, unexpired viewer token."""
        secret = self.config.viewer_secret
        if secret is not None:
            verify_viewer_token(secret, self.name, token, now)

    def check_rendition(self, requested: str) -> str:
        names = [r.name for r in self.ladder]
        if requested != AUTO and requested not in names:
            raise BadRequest(f"unknown rendition {requested!r}: choose auto or one of {', '.join(names)}")
        return requested

    # ---- frames -----------------------------------------------------------------------------
    def _on_frame(self, frame: EncodedFrame) -> None:
        self.fanout.publish(frame)

    def _on_rungs(self, sizes: dict[str, tuple[int, int]]) -> None:
        available = list(sizes)
        now = time.monotonic()
        for choice in self._choices.values():
            choice.abr.set_rungs(self._rates(), now)
        self.fanout.remap(available, self._nearest)
        for viewer_id, choice in self._choices.items():
            target = self._nearest(choice.fixed) if choice.fixed else choice.abr.current
            if self.fanout.rung_of(viewer_id) != target:
                self.fanout.switch(viewer_id, target)

    def _viewer_broken(self, viewer_id: str, reason: str) -> None:
        viewer = self.viewers.get(viewer_id)
        log.warning("stream %s: sending to viewer %s failed (%s); closing it", self.name, viewer_id[:8], reason)
        if viewer is not None:
            viewer.close_soon(f"send failed: {reason}")

    def _on_switched(self, viewer_id: str, rung: str) -> None:
        viewer = self.viewers.get(viewer_id)
        if viewer is not None:
            viewer.send(self._rendition_message(viewer_id, rung))

    def _rendition_message(self, viewer_id: str, rung: str) -> str:
        """What a viewer is told about its rung: name, size, and whether it is on auto."""
        width, height = self.transcoder.sizes.get(rung, (0, 0))
        choice = self._choices.get(viewer_id)
        auto = choice is not None and choice.fixed is None
        return json.dumps({"type": "rendition", "name": rung, "width": width, "height": height, "auto": auto})

    # ---- publisher ----------------------------------------------------------------------------
    def state_message(self) -> str:
        state = self.state
        return json.dumps({"type": "stream", "stream": self.name, "live": state == "live", "state": state})

    def broadcast(self, message: str) -> None:
        for viewer in self.viewers.values():
            viewer.send(message)

    def set_publisher(self, publisher: Publisher | None) -> None:
        was = self.state
        self.publisher = publisher
        self._media = False
        if was != self.state:
            log.info("stream %s is %s", self.name, self.state)
            self.broadcast(self.state_message())

    def _on_media(self) -> None:
        """The publisher's first video frame: only now is the stream live."""
        if self.publisher is not None and not self._media:
            self._media = True
            log.info("stream %s is live", self.name)
            self.broadcast(self.state_message())

    # ---- viewers --------------------------------------------------------------------------------
    def greeting(self, viewer: ViewerSession) -> list[str]:
        """What a viewer's ``cards`` channel gets on open: stream state, card snapshot, clock."""
        snapshot = self.cards.board.snapshot()
        clock = self.clock_message(viewer)
        if clock is not None:
            snapshot["clock"] = json.loads(clock)  # how to map this viewer's RTP time to pts_ms
        messages = [self.state_message(), json.dumps(snapshot, separators=(",", ":"))]
        if clock is not None:
            messages.append(clock)
        return messages

    def clock_message(self, viewer: ViewerSession) -> str | None:
        """How this viewer maps RTP timestamps to media time (pts_ms of cards).

        Its first video frame had media time ``first_pts_ms``; later frames are that plus
        (RTP timestamp - first frame's RTP timestamp) / 90, modulo 2**32.
        """
        first = viewer.tracks.video.first_pts
        if first is None:
            return None
        return json.dumps({"type": "clock", "first_pts_ms": first // 90, "rtp_clock_hz": 90000})

    def add_viewer(self, viewer: ViewerSession, rendition: str) -> None:
        fixed = None if rendition == AUTO else rendition
        start = "480p" if "480p" in self.available_rungs() else None
        abr = AbrPolicy(self._rates(), start=start)
        self._choices[viewer.id] = ViewerChoice(fixed, abr)
        self.viewers[viewer.id] = viewer

        def first_packet(_pts: int) -> None:
            message = self.clock_message(viewer)
            if message is not None:
                viewer.send(message)

        viewer.tracks.video.on_first = first_packet
        self.fanout.attach(viewer.id, viewer.tracks, self._nearest(fixed) if fixed else abr.current)

    def remove_viewer(self, viewer_id: str) -> None:
        self.viewers.pop(viewer_id, None)
        self._choices.pop(viewer_id, None)
        self._reported_loss.pop(viewer_id, None)
        self.fanout.detach(viewer_id)

    def on_viewer_message(self, viewer: ViewerSession, text: str) -> None:
        """A control message on a viewer's ``cards`` channel (never trusted, never raises)."""
        try:
            message = json.loads(text)
        except ValueError:
            viewer.bad_messages += 1
            return
        if not isinstance(message, dict) or message.get("type") != "rendition":
            viewer.bad_messages += 1
            return
        name = message.get("name")
        choice = self._choices.get(viewer.id)
        if choice is None or not isinstance(name, str):
            viewer.bad_messages += 1
            return
        try:
            self.check_rendition(name)
        except BadRequest as exc:
            viewer.send(json.dumps({"type": "error", "reason": exc.reason}))
            return
        choice.fixed = None if name == AUTO else name
        target = self._nearest(choice.fixed) if choice.fixed else choice.abr.current
        log.info("viewer %s/%s: rendition %s -> %s", self.name, viewer.id[:8], name, target)
        self.fanout.switch(viewer.id, target)
        if not self.fanout.is_switching(viewer.id):
            # Already on that rung: no switch will be announced, so say it now (e.g. "auto" chosen
            # while the policy wants the current rung).
            viewer.send(self._rendition_message(viewer.id, target))

    def on_viewer_feedback(self, viewer_id: str, feedback: Feedback) -> None:
        choice = self._choices.get(viewer_id)
        if choice is None:
            return
        if feedback.keyframe_request:
            self.viewer_keyframe_requests += 1
            rung = self.fanout.rung_of(viewer_id)
            if rung is not None:
                self.transcoder.request_keyframe(rung)
            return
        now = time.monotonic()
        if feedback.remb_bps is not None:
            decision = choice.abr.on_remb(feedback.remb_bps, now)
        elif feedback.loss is not None:
            self._reported_loss[viewer_id] = feedback.loss
            decision = choice.abr.on_loss(feedback.loss, now)
        else:
            return
        if decision is not None and choice.fixed is None:
            log.info("viewer %s/%s: auto -> %s", self.name, viewer_id[:8], decision)
            self.fanout.switch(viewer_id, decision)

    # ---- introspection ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.name,
            "live": self.state == "live",
            "state": self.state,
            "publisher": self.publisher.id[:8] if self.publisher is not None else None,
            "viewers": len(self.viewers),
            "rungs": [
                {
                    "name": s.rung,
                    "width": s.width,
                    "height": s.height,
                    "viewers": self.fanout.viewers_on(s.rung),
                    "kbps_target": s.kbps or self._kbps.get(s.rung, 0),  # scaled by the picture's area
                    "frames_in": s.frames_in,
                    "frames_out": s.frames_out,
                    "frames_dropped": s.frames_dropped,
                    "encode_calls": s.encode_calls,
                    "keyframes": s.keyframes,
                    "keyframes_forced": s.keyframes_forced,
                    "bytes_out": s.bytes_out,
                    "encode_ms_total": s.encode_ms_total,
                }
                for s in self.transcoder.stats()
            ],
            "frames_forwarded": self.fanout.frames_forwarded,
            "packets_forwarded": self.fanout.packets_forwarded,
            "bytes_forwarded": self.fanout.bytes_forwarded,
            "packets_dropped": sum(link.dropped for link in self.fanout.links()),
            "packets_retransmitted": self.fanout.retransmitted,
            "viewer_send_errors": self.fanout.send_errors,
            "nack_reports": self.fanout.nack_reports,
            "packets_nacked": self.fanout.nacked_packets,
            "viewer_keyframe_requests": self.viewer_keyframe_requests,
            "viewer_loss_mean": (sum(losses) / len(losses)) if (losses := list(self._reported_loss.values())) else 0.0,
            "viewer_loss_max": max(self._reported_loss.values(), default=0.0),
            "card_actions": self.cards.actions,
        }

    async def close(self) -> None:
        await self.transcoder.close()
