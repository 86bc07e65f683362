"""The stream registry: which streams exist, who publishes and who watches, and the limits.

It opens and ends sessions; the HTTP handlers only translate requests into calls here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aioice.ice import get_host_addresses
from aiortc import RTCRtpSender

from ingest.errors import BadOffer, LiveCartError, exhausted
from ingest.peer import apply_offer, close_quietly, make_answer, new_peer_connection, watch_state
from ingest.publisher import PublisherSession
from ingest.sdp import OfferSummary, alias_h264_profiles, hint_start_bitrate, restore_h264_profiles, view_codec
from ingest.synthetic import SyntheticSource
from relay.cards.board import CardBoard
from relay.cards.store import CardStore
from relay.config import Config
from relay.errors import SessionNotFound, StreamBusy, StreamNotFound
from relay.hls.library import RecordingLibrary
from relay.identity import Identity, guest
from relay.media.fanout import TrackOut
from relay.media.takeover import keep_transport_cc, take_over
from relay.media.udplink import NATIVE
from relay.messages import Bye, encode
from relay.observe.process import open_fds, process_counts
from relay.sessions.admission import Admission, AdmissionLimits, Kind, Phase
from relay.sessions.ended import RecentlyEnded
from relay.sessions.pullserve import PullSession, open_pull
from relay.sessions.stream import Stream
from relay.sessions.viewer import ViewerSession
from relay.sessions.webhooks import Webhooks
from relay.talk.store import TalkStore
from transcode.frames import H264, VP8

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 5.0  # OBS gives up after 8 s; the answer must be well inside that
MAX_CATALOGUE = 500  # products per stream
CARD_HISTORY = 1000  # card events kept in memory per stream for SSE resumption


def new_session_id() -> str:
    """An unguessable session id: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def _video_preferences(codec: str) -> list[Any]:
    """aiortc's codecs for sending ``codec`` ("h264" or "vp8"), with RTX."""
    wanted = "video/VP8" if codec == VP8 else "video/H264"
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType in (wanted, "video/rtx")]


def _raise_if_exhausted(exc: BaseException) -> None:
    """Out of descriptors, ports, buffers or memory anywhere in a setup: the server's 503."""
    if isinstance(exc, Exception) and not isinstance(exc, LiveCartError):
        problem = exhausted(exc)
        if problem is not None:
            raise problem from None


class Registry:
    """Owns every stream and session of the server; closes them all in ``close``.

    What may be admitted is decided by ``admission`` (pure accounting); the registry reports
    every session's phase changes to it.
    """

    def __init__(self, config: Config, fd_limit: int | None = None) -> None:
        self.config = config
        limits = config.limits
        addresses = max(1, len(get_host_addresses(use_ipv4=True, use_ipv6=True)))
        self.admission = Admission(
            AdmissionLimits(
                max_publishers=limits.max_publishers,
                max_viewers_per_stream=limits.max_viewers_per_stream,
                max_viewers_total=limits.max_viewers_total,
                max_connecting=limits.max_connecting,
                fd_limit=fd_limit,
                # aioice opens one UDP socket per host address; the fast path dups a viewer's.
                fds_per_viewer=addresses + 1,
                fds_per_publisher=addresses,
            )
        )
        self.webhooks = Webhooks(config.server)
        # Cards are stored in SQLite, used from one worker thread; loading happens once at start.
        self.card_store = CardStore(Path(config.server.data_dir) / "cards.sqlite3")
        self.talk_store = TalkStore(Path(config.server.data_dir) / "talk.sqlite3")
        self._store_pool = ThreadPoolExecutor(1, thread_name_prefix="card-store")
        recording = config.recording
        self.recordings = RecordingLibrary(
            Path(recording.directory) if recording.directory else Path(config.server.data_dir) / "recordings", recording
        )
        self.recordings.sweep(time.time())  # retention, once at start (each recording's end does it too)
        # An edge mirrors its origin's cards (relay.sessions.upstream): the catalogue is stored once,
        # on the origin, never per edge.
        edge = config.cluster.role in ("edge", "relay")
        self.streams: dict[str, Stream] = {
            s.name: Stream(
                s,
                config.transcode,
                hls=config.hls,
                board=(
                    CardBoard(max_catalogue=MAX_CATALOGUE, history=CARD_HISTORY)
                    if edge
                    else self.card_store.load(s.name, max_catalogue=MAX_CATALOGUE, history=CARD_HISTORY)
                ),
                store=None if edge else self.card_store,
                talk_store=self.talk_store,
                store_pool=self._store_pool,
                recording=recording,
                recordings=None if edge else self.recordings,
            )
            for s in config.streams
        }
        for stream in self.streams.values():
            stream.talk.restore(*self.talk_store.load(stream.name))
        self._ticker: asyncio.Task[None] | None = None
        self.publishers: dict[str, PublisherSession] = {}
        self.viewers: dict[str, ViewerSession] = {}
        self.pulls: dict[str, PullSession] = {}  # edges pulling streams from this node (an origin)
        self._demo: SyntheticSource | None = None
        self.recently_ended = RecentlyEnded()  # so a DELETE just after the session ended gets 200

    def start(self) -> None:
        """Start every stream and the once-a-second work; ``close`` stops them."""
        for stream in self.streams.values():
            stream.start()
        self._ticker = asyncio.get_running_loop().create_task(self._every_second(), name="registry ticker")

    def stream(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            raise StreamNotFound(f"unknown stream {name!r}")
        return stream

    # ---- publishers -------------------------------------------------------------------
    def _open_fds(self) -> int:
        """Descriptors in use now (read only when a descriptor budget is enforced)."""
        return open_fds() if self.admission.limits.fd_limit is not None else 0

    def _track_connection(self, session_id: str, pc: Any) -> None:
        def changed(state: str) -> None:
            if state == "connected":
                self.admission.connected(session_id)

        watch_state(pc, changed)

    async def open_publisher(self, stream: Stream, offer_sdp: str, offer: OfferSummary) -> tuple[str, str]:
        """Negotiate a WHIP publisher on ``stream``; returns (session id, answer SDP)."""
        del offer  # validated by the caller; kept for future codec decisions
        limits = self.config.limits
        if stream.live and not stream.config.takeover:
            raise StreamBusy(f"stream {stream.name!r} already has a live publisher and takeover is off")
        session_id = new_session_id()
        self.admission.admit_publisher(session_id, stream.name, open_fds=self._open_fds())
        try:
            pc = new_peer_connection()
            try:
                session = PublisherSession(
                    session_id,
                    stream.name,
                    pc,
                    stream.transcoder,
                    setup_timeout_s=limits.setup_timeout_s,
                    media_timeout_s=limits.media_timeout_s,
                    on_end=self._publisher_ended,
                    on_message=lambda _session, text: stream.cards.handle_message(text),
                )
                self._track_connection(session_id, pc)
                aiortc_offer, profiles = alias_h264_profiles(offer_sdp)  # Main/High H.264 publishers too
                await apply_offer(pc, aiortc_offer)
                self._guard_receivers(session)
                answer = restore_h264_profiles(await make_answer(pc, timeout_s=ANSWER_TIMEOUT_S), profiles)
                answer = hint_start_bitrate(answer, self.config.server.publisher_start_kbps)
            except BaseException:
                await close_quietly(pc, f"publisher {stream.name} (negotiation)")
                raise
            previous = stream.publisher
            if previous is not None:
                if not stream.config.takeover:  # a publisher went live while we negotiated
                    await close_quietly(pc, session.label)
                    raise StreamBusy(f"stream {stream.name!r} already has a live publisher and takeover is off")
                await previous.close("taken over by a new publisher")
                self.admission.source_live(stream.name, False)  # the demo source, if it was that
        except BaseException as exc:
            self.admission.end(session_id)
            _raise_if_exhausted(exc)
            raise
        self.admission.answered(session_id)
        self.publishers[session.id] = session
        stream.set_publisher(session)
        session.start()
        log.info("%s: publishing", session.label)
        return session.id, answer

    def _guard_receivers(self, session: PublisherSession) -> None:
        """aiortc starts each receiver (a decoder thread) in a task nobody awaits, once connected:
        if that fails the publisher is ended at once and told why, not left connected with nothing."""
        for transceiver in session.pc.getTransceivers():
            receiver = transceiver.receiver
            start = receiver.receive

            async def receive(parameters: Any, start: Any = start, kind: str = transceiver.kind) -> None:
                try:
                    await start(parameters)
                except Exception as exc:
                    problem = exhausted(exc)
                    reason = problem.reason if problem else f"{type(exc).__name__}: {exc}"
                    log.warning("%s: cannot receive %s: %s", session.label, kind, reason)
                    why = f"no {kind} receiver: {reason}"
                    session.end_with_bye(why, encode(Bye(why)))

            receiver.receive = receive  # type: ignore[method-assign]

    async def _publisher_ended(self, session: PublisherSession, reason: str) -> None:
        self.admission.end(session.id)
        self.recently_ended.record(session.id, f"whip/{session.stream}", time.monotonic())
        self.publishers.pop(session.id, None)
        self.webhooks.unpublished(session.stream, reason)
        stream = self.streams.get(session.stream)
        if stream is not None and stream.publisher is session:
            stream.set_publisher(None)

    def publisher(self, stream_name: str, session_id: str) -> PublisherSession:
        session = self.publishers.get(session_id)
        if session is None or session.stream != stream_name:
            raise SessionNotFound(f"no publisher session {session_id[:8]}… on stream {stream_name!r}")
        return session

    async def close_publisher(self, stream_name: str, session_id: str, reason: str = "DELETE by client") -> bool:
        """End a publisher; False (not an error) when it ended moments ago by itself."""
        if session_id not in self.publishers and self.recently_ended.ended(
            session_id, f"whip/{stream_name}", time.monotonic()
        ):
            return False
        await self.publisher(stream_name, session_id).close(reason)
        return True

    def start_demo(self, stream: Stream) -> None:
        demo = SyntheticSource(stream.name, stream.transcoder)
        self._demo = demo
        stream.set_publisher(demo, record=False)  # a test pattern is not worth the disk
        self.admission.source_live(stream.name, True)
        demo.start()
        log.info("%s: publishing", demo.label)

    # ---- viewers ----------------------------------------------------------------------
    async def open_viewer(
        self,
        stream: Stream,
        offer_sdp: str,
        offer: OfferSummary,
        rendition: str = "auto",
        identity: Identity | None = None,
    ) -> tuple[str, str]:
        """Negotiate a WHEP viewer of ``stream`` on ``rendition``; returns (session id, answer SDP)."""
        stream.check_rendition(rendition)
        codec = view_codec(offer) or H264  # the caller refused offers with neither
        if codec == VP8 and self.config.cluster.role in ("edge", "relay"):
            # An edge only forwards the origin's H.264 rungs; it has no decoder to feed a VP8 encoder.
            raise BadOffer("this edge serves H.264 only: offer H.264, or watch on the stream's origin")
        session_id = new_session_id()
        self.admission.admit_viewer(
            session_id, stream.name, max_viewers=stream.config.max_viewers, open_fds=self._open_fds()
        )
        try:
            pc = new_peer_connection()
            tracks = stream.fanout.new_tracks(session_id, with_audio=offer.audio is not None)
            try:
                session = ViewerSession(
                    session_id,
                    stream.name,
                    pc,
                    tracks,
                    setup_timeout_s=self.config.limits.setup_timeout_s,
                    on_end=self._viewer_ended,
                    stop_media=lambda: stream.fanout.detach(session_id),
                    greeting=lambda: stream.greeting(session),
                    on_message=stream.on_viewer_message,
                    expects_channel=offer.has_datachannel,
                    identity=identity or guest(),
                )
                self._track_connection(session_id, pc)
                # Our transceivers exist before the offer is applied, so aiortc matches them to the
                # offer's m-lines and negotiates only the codec we send this viewer: H.264, or VP8
                # for a viewer without H.264 (e.g. prebuilt libwebrtc, GStreamer's VP8-only offer).
                video = pc.addTransceiver("video", direction="sendonly")
                video.setCodecPreferences(_video_preferences(codec))
                self._hand_over(stream, session, video.sender, tracks.video)
                if tracks.audio is not None:
                    audio = pc.addTransceiver("audio", direction="sendonly")
                    self._hand_over(stream, session, audio.sender, tracks.audio)
                await apply_offer(pc, offer_sdp)
                keep_transport_cc(pc)  # send-side bandwidth estimation for peers that offer it
                answer = await make_answer(pc, timeout_s=ANSWER_TIMEOUT_S)
            except BaseException:
                await close_quietly(pc, f"viewer {stream.name} (negotiation)")
                raise
        except BaseException as exc:
            self.admission.end(session_id)
            _raise_if_exhausted(exc)
            raise
        self.admission.answered(session_id)
        self.viewers[session.id] = session
        stream.add_viewer(session, rendition, codec)
        session.start()
        log.info("%s: watching (%s)", session.label, codec.upper())
        return session.id, answer

    def _hand_over(self, stream: Stream, session: ViewerSession, sender: RTCRtpSender, out: TrackOut) -> None:
        """Once connected, the viewer's media goes through the fan-out's fast path, not aiortc's.

        This runs inside a task of aiortc's that nobody awaits: whatever goes wrong here must end
        the viewer (and tell it why), never escape as an unretrieved task exception.
        """
        fanout = stream.fanout
        kind = out.kind

        def ready(dtls: Any) -> None:
            link = session.link_for(dtls, kind)
            if link is not None:
                fanout.activate(session.id, kind, link)

        def nack(lost: list[int]) -> None:
            fanout.retransmit(session.id, kind, lost)

        take_over(
            sender,
            out,
            on_ready=ready,
            on_nack=nack,
            on_feedback=lambda feedback: stream.on_viewer_feedback(session.id, feedback),
            on_tcc=(lambda fci: stream.on_viewer_tcc(session.id, fci)) if kind == "video" else None,
        )

    async def _viewer_ended(self, session: ViewerSession, reason: str) -> None:
        self.admission.end(session.id)
        self.recently_ended.record(session.id, f"whep/{session.stream}", time.monotonic())
        self.viewers.pop(session.id, None)
        stream = self.streams.get(session.stream)
        if stream is not None:
            stream.remove_viewer(session.id)
            await stream.stop_unwatched_encoders()

    # ---- pulls: edges as privileged viewers of every rung (relay.sessions.pullserve) ----------
    async def open_pull(self, stream: Stream, offer_sdp: str, rungs: list[str], node: str) -> tuple[str, str]:
        """An edge's pull of ``rungs`` of ``stream`` (its cluster token was checked by the caller).

        Not counted against viewer limits: one pull serves all of an edge's viewers."""
        session_id = new_session_id()
        try:
            session, answer = await open_pull(
                stream,
                offer_sdp,
                rungs,
                node=node,
                session_id=session_id,
                setup_timeout_s=self.config.limits.setup_timeout_s,
                on_end=self._pull_ended,
            )
        except BaseException as exc:
            _raise_if_exhausted(exc)
            raise
        self.pulls[session.id] = session
        return session.id, answer

    async def _pull_ended(self, session: ViewerSession, reason: str) -> None:
        self.recently_ended.record(session.id, f"pull/{session.stream}", time.monotonic())
        self.pulls.pop(session.id, None)
        stream = self.streams.get(session.stream)
        if stream is not None:
            stream.pull_ended(session.id)
        log.info("%s: pull ended (%s)", session.label, reason)

    async def close_pull(self, stream_name: str, session_id: str) -> bool:
        session = self.pulls.get(session_id)
        if session is None or session.stream != stream_name:
            if self.recently_ended.ended(session_id, f"pull/{stream_name}", time.monotonic()):
                return False
            raise SessionNotFound(f"no pull session {session_id[:8]}… on stream {stream_name!r}")
        await session.close("DELETE by edge")
        return True

    def viewer(self, stream_name: str, session_id: str) -> ViewerSession:
        session = self.viewers.get(session_id)
        if session is None or session.stream != stream_name:
            raise SessionNotFound(f"no viewer session {session_id[:8]}… on stream {stream_name!r}")
        return session

    async def close_viewer(self, stream_name: str, session_id: str, reason: str = "DELETE by client") -> bool:
        """End a viewer; False (not an error) when it ended moments ago by itself."""
        if session_id not in self.viewers and self.recently_ended.ended(
            session_id, f"whep/{stream_name}", time.monotonic()
        ):
            return False
        await self.viewer(stream_name, session_id).close(reason)
        return True

    async def _every_second(self) -> None:
        """Once a second: RTCP sender reports to every viewer, and hide cards whose ttl_s ran out."""
        while True:
            await asyncio.sleep(1.0)
            for stream in self.streams.values():
                stream.fanout.send_reports(stream.media_time())
                stream.tick_analytics(time.monotonic())
                await stream.stop_unwatched_encoders()  # a VP8 viewer moved to another rung
                try:
                    await stream.cards.expire()
                except Exception:  # one stream's storage trouble must not stop the others
                    log.exception("stream %s: expiring cards failed", stream.name)

    # ---- introspection and shutdown -----------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        admission = self.admission
        fd = admission.limits
        process = process_counts()
        negotiating = admission.count(phase=Phase.NEGOTIATING)
        session_tasks = sum(p.task_count for p in self.publishers.values()) + sum(
            v.task_count for v in self.viewers.values()
        )
        return {
            "streams": [s.snapshot() for s in self.streams.values()],
            "sessions": {
                "publishers": len(self.publishers),
                "viewers": len(self.viewers),
                "pulls": len(self.pulls),
                "negotiating": negotiating,
                "peer_connections": len(self.publishers) + len(self.viewers) + negotiating,
                "session_tasks": session_tasks,
            },
            "process": process,
            # The per-viewer send loop: relay/media/_sendloop.c, or Python (not built, LIVECART_NATIVE=0).
            "send_loop": "compiled" if NATIVE else "python",
            "descriptors": {
                "open": process["open_fds"],
                "limit": fd.fd_limit,
                "reserve": fd.fd_reserve,
                "per_viewer": fd.fds_per_viewer,
                "per_publisher": fd.fds_per_publisher,
                # What sessions not yet connected may still open (their sockets, the fast path's dup).
                "pending": (pending := admission.pending_fds()),
                "viewers_room": fd.sessions_allowed(process["open_fds"] + pending, Kind.VIEWER),
            },
        }

    async def close(self) -> None:
        """Shutdown: tell every viewer ``bye``, then close every session and stream."""
        bye = encode(Bye("server shutting down"))
        await asyncio.gather(*(v.say_goodbye(bye) for v in self.viewers.values()), return_exceptions=True)
        await asyncio.gather(*(p.say_goodbye(bye) for p in self.pulls.values()), return_exceptions=True)
        sessions: list[Any] = [*self.publishers.values(), *self.viewers.values(), *self.pulls.values()]
        if self._demo is not None:
            sessions.append(self._demo)
        await asyncio.gather(*(s.close("server shutting down") for s in sessions), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self.streams.values()), return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.webhooks.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._store_pool, self.card_store.close)
        await loop.run_in_executor(self._store_pool, self.talk_store.close)
        await loop.run_in_executor(None, self._store_pool.shutdown)
