"""An origin serving an edge's pull: one privileged WHEP viewer that receives every rung at once.

An edge pulls a stream as a WHEP viewer of the origin (the same offer/answer, ICE, DTLS and
SRTP as any viewer, so the same loss recovery: the origin answers its NACKs from each rung's
packet history and turns its PLIs into encoder keyframes), with three differences:

- its offer has one video section per rung, named in order by ``?rungs=720p,480p,240p``; each
  is pinned to its rung (no ABR, no switch), and the first also carries the audio;
- its timestamps are the stream's media clock itself (offset 0), so the edge recovers every
  frame's ``pts`` exactly and stamps cards with the same ``pts_ms`` as the origin does;
- its ``cards`` data channel gets the stream state and the card snapshot on open, then every
  broadcast (card events with their ``seq``, state changes, talk), but no per-viewer clock.

In the origin's fan-out each rung of the pull is one member named ``{session}/{rung}``; they
share the session's one bundled link.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpSender

from ingest.errors import BadOffer
from ingest.peer import apply_offer, close_quietly, make_answer, new_peer_connection
from relay.identity import Identity
from relay.media.fanout import TrackOut, ViewerTracks
from relay.media.rewriter import RtpRewriter
from relay.media.takeover import take_over
from relay.messages import encode
from relay.sessions.stream import Stream
from relay.sessions.viewer import ViewerSession

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 5.0


class PullSession(ViewerSession):
    """Owns one edge's pull of one stream: its peer connection and its fan-out members."""

    kind = "pull"

    def __init__(self, *args: Any, node: str, rungs: dict[str, tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node = node  # the edge that pulls (what it said in its request)
        self.opened_at = time.monotonic()
        self.rungs = dict(rungs)  # rung -> size when the pull began: a change ends the pull

    def member(self, rung: str) -> str:
        return f"{self.id}/{rung}"


def _h264_preferences() -> list[Any]:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType in ("video/H264", "video/rtx")]


def parse_rungs(text: str, stream: Stream) -> list[str]:
    """``?rungs=`` of a pull: names of rungs the stream encodes now, each once."""
    names = [n for n in text.split(",") if n]
    available = stream.sizes()
    if not names:
        raise BadOffer("a pull names its rungs: ?rungs=720p,480p,...")
    if len(set(names)) != len(names):
        raise BadOffer("a pull names each rung once")
    unknown = [n for n in names if n not in available]
    if unknown:
        has = ", ".join(available) or "none"
        raise BadOffer(f"stream {stream.name!r} has no rung {unknown[0]!r} now (it has {has})")
    return names


async def open_pull(
    stream: Stream,
    offer_sdp: str,
    rungs: list[str],
    *,
    node: str,
    session_id: str,
    setup_timeout_s: float,
    on_end: Callable[[ViewerSession, str], Awaitable[None]],
) -> tuple[PullSession, str]:
    """Negotiate an edge's pull of ``rungs`` of ``stream``; returns the session and the answer."""
    video_sections = sum(1 for line in offer_sdp.splitlines() if line.startswith("m=video"))
    if video_sections != len(rungs):
        raise BadOffer(f"a pull of {len(rungs)} rungs offers {len(rungs)} video sections, not {video_sections}")
    with_audio = any(line.startswith("m=audio") for line in offer_sdp.splitlines())
    fanout = stream.fanout
    members: dict[str, ViewerTracks] = {}
    for index, rung in enumerate(rungs):
        tracks = ViewerTracks(TrackOut("video"), TrackOut("audio") if with_audio and index == 0 else None)
        for out in tracks.outs():
            out.rewriter = RtpRewriter(random.getrandbits(16), 0)  # media time as it is: see above
        members[rung] = tracks
    first = members[rungs[0]]
    pc = new_peer_connection()
    try:
        session = PullSession(
            session_id,
            stream.name,
            pc,
            first,
            setup_timeout_s=setup_timeout_s,
            on_end=on_end,
            stop_media=lambda: _detach_all(stream, session_id, rungs),
            greeting=lambda: [
                stream.state_message(),
                encode(stream.cards.board.snapshot()),
                *stream.talk.bans_for_nodes(),
                *([stream.talk.pinned] if stream.talk.pinned is not None else []),
            ],
            on_message=stream.on_edge_message,  # its viewers' comments and likes
            expects_channel=True,
            identity=Identity(sub=f"edge:{node}", name=node, role="viewer", guest=False),
            node=node,
            rungs={r: stream.sizes()[r] for r in rungs},
        )
        for rung in rungs:
            video = pc.addTransceiver("video", direction="sendonly")
            video.setCodecPreferences(_h264_preferences())
            _hand_over(stream, session, rung, video.sender, members[rung].video)
        if first.audio is not None:
            audio = pc.addTransceiver("audio", direction="sendonly")
            _hand_over(stream, session, rungs[0], audio.sender, first.audio)
        await apply_offer(pc, offer_sdp)
        answer = await make_answer(pc, timeout_s=ANSWER_TIMEOUT_S)
    except BaseException:
        await close_quietly(pc, f"pull {stream.name} (negotiation)")
        raise
    for rung, tracks in members.items():
        fanout.attach(session.member(rung), tracks, rung)
    stream.pulls[session.id] = session
    session.start()
    log.info("%s: edge %s pulls %s", session.label, node, ", ".join(rungs))
    return session, answer


def _detach_all(stream: Stream, session_id: str, rungs: list[str]) -> None:
    for rung in rungs:
        stream.fanout.detach(f"{session_id}/{rung}")


def _hand_over(stream: Stream, session: PullSession, rung: str, sender: RTCRtpSender, out: TrackOut) -> None:
    """As a viewer's (``Registry._hand_over``), for one rung of the pull: the edge's NACKs are
    answered from that rung's history, its PLIs become keyframe requests for that rung."""
    fanout = stream.fanout
    member = session.member(rung)
    kind = out.kind

    def ready(dtls: Any) -> None:
        link = session.link_for(dtls, kind)
        if link is not None:
            fanout.activate(member, kind, link)

    def nack(lost: list[int]) -> None:
        fanout.retransmit(member, kind, lost)

    def feedback(report: Any) -> None:
        if report.keyframe_request:
            stream.pull_keyframe_requests += 1
            stream.request_rung_keyframe(rung)

    take_over(sender, out, on_ready=ready, on_nack=nack, on_feedback=feedback)
