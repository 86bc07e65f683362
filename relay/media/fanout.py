"""Fan-out: one stream's encoded frames to every viewer, each on the rung it watches.

This is the hottest code in LiveCart. Each encoded frame is packetised once per rung
(``RtpFrame``: shared payloads, rung sequence numbers, GSO runs). Per viewer the only work is a
12-byte header in front of each shared payload (the viewer's SSRC, payload type, sequence number
and timestamp offsets), SRTP, and one batched send per frame (``relay.udplink.UdpLink``): no queue, no task,
no coroutine per viewer or per packet.

A viewer's numbering across rung switches is its ``RtpRewriter`` (``relay.media.rewriter``), and
each rung's packet history and GOP cache are ``relay.media.history``; both are pure and tested
alone. This module routes frames and viewers between them and the links.

A viewer that negotiated transport-wide congestion control gets each packet stamped with its
own transport-wide sequence number: the header and the extension block (whose last element is
that number) are one ``struct`` pack per packet, so stamping costs no more than the plain path's
header + extension concatenation; the send times go to the viewer's ``SendSideEstimator`` once
per frame, not per packet. Retransmissions draw on the viewer's ``RepairBudget`` and go on its
RTX stream where one was negotiated; probes are RTX copies of packets it already has.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Protocol

from aiortc.rtp import RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

from relay.media.bwe import SendSideEstimator
from relay.media.history import GopCache, Packet, PacketHistory
from relay.media.repair import RepairBudget
from relay.media.rewriter import RtpRewriter
from relay.media.rtp import HEADER, abs_send_time, gso_runs, ntp_timestamp, one_byte_extensions, packetize_h264
from relay.media.vp8 import packetize_vp8
from transcode.frames import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, VP8, EncodedFrame

GOP_CACHE_FRAMES = 90  # frames kept since each rung's last keyframe, for instant joins
HISTORY_PACKETS = 1024  # packets kept per rung for retransmission (~4 s of 2.5 Mbit/s video)
MAX_NACKED_PER_REPORT = 64  # retransmissions one NACK report may trigger
AUDIO = "audio"
SRTP_TAG = 16  # bytes SRTP adds to a packet (AES-GCM tag; HMAC-SHA1-80 adds 10): for rate accounting
DEFAULT_REPAIR_BPS = 1_000_000  # the estimate a repair budget starts from before feedback says more
OSN = struct.Struct("!H")  # RTX: the original sequence number in front of the payload (RFC 4588)


class Link(Protocol):
    """A viewer's path to the wire (``relay.media.udplink.UdpLink``; a recorder in unit tests)."""

    sent: int
    dropped: int
    # The whole frame in compiled code (UdpLink.send_native), or None for the Python loop below.
    native: Callable[..., None] | None

    def protect(self, packet: bytes) -> bytes: ...

    def send_runs(self, packets: list[bytes], runs: list[tuple[int, int]]) -> None: ...

    def send_one(self, packet: bytes) -> None: ...

    def send_rtcp(self, compound: bytes) -> None: ...

    def close(self) -> None: ...


class RtpFrame:
    """One frame of one rung, packetised once and shared by every viewer of that rung."""

    __slots__ = ("first_seq", "head", "keyframe", "octets", "payloads", "runs", "ts")

    def __init__(self, payloads: list[bytes], first_seq: int, ts: int, keyframe: bool) -> None:
        self.payloads = payloads
        self.head = payloads[:-1]  # every packet but the last (which carries the marker bit)
        self.first_seq = first_seq  # the rung's sequence number of the first packet (unbounded int)
        self.ts = ts  # media timestamp (90 kHz video, 48 kHz audio)
        self.keyframe = keyframe
        self.octets = sum(len(p) for p in payloads)
        self.runs = gso_runs([len(p) for p in payloads])


class RungState:
    """A rung's (or the audio track's) packet history, GOP cache, last frame and viewers."""

    __slots__ = ("gop", "history", "last", "members", "pending")

    def __init__(self) -> None:
        self.history = PacketHistory(HISTORY_PACKETS)
        self.gop: GopCache[RtpFrame] = GopCache(GOP_CACHE_FRAMES)
        self.last: RtpFrame | None = None
        self.members: dict[str, ViewerTracks] = {}
        self.pending: dict[str, ViewerTracks] = {}

    @property
    def next_seq(self) -> int:
        return self.history.next_seq

    def add(self, payloads: list[bytes], ts: int, keyframe: bool) -> RtpFrame:
        frame = RtpFrame(payloads, self.history.add(payloads, ts), ts, keyframe)
        self.last = frame
        return frame

    def find(self, seq16: int) -> Packet | None:
        return self.history.find(seq16)


class TrackOut:
    """One outgoing RTP stream of one viewer: its identifiers, offsets and counters."""

    __slots__ = (
        "b0",
        "bwe",
        "clock_hz",
        "cname",
        "ext_key",
        "kind",
        "link",
        "octets",
        "overhead",
        "packets",
        "pt",
        "repair",
        "rewriter",
        "rtx_pt",
        "rtx_seq",
        "rtx_ssrc",
        "ssrc",
        "tcc_pack",
        "tcc_pad",
        "tseq",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.clock_hz = VIDEO_CLOCK_HZ if kind == "video" else AUDIO_CLOCK_HZ
        self.ssrc = 0
        self.pt = 0
        self.cname = b""
        self.b0 = 0x80  # V=2; 0x90 with header extensions
        self.ext_key: ExtKey = (None, None, b"", None)
        # Transport-wide congestion control (None unless negotiated): header + extension block +
        # this viewer's transport-wide number in one pack; the number itself; the estimator.
        self.tcc_pack: struct.Struct | None = None
        self.tcc_pad = -1  # zero bytes after the number in the block (-1: no number)
        self.tseq = 0
        self.bwe: SendSideEstimator | None = None
        self.repair = RepairBudget(DEFAULT_REPAIR_BPS * 0.15, 0.0)
        self.rtx_pt: int | None = None
        self.rtx_ssrc = 0
        self.rtx_seq = random.getrandbits(16)
        self.overhead = len(HEADER.pack(0, 0, 0, 0, 0)) + SRTP_TAG  # bytes per packet beside the payload
        self.rewriter: RtpRewriter[RungState] = RtpRewriter(random.getrandbits(16), random.getrandbits(32))
        self.link: Link | None = None
        self.packets = 0
        self.octets = 0

    def configure(
        self,
        ssrc: int,
        pt: int,
        mid: str | None,
        abs_send_time_id: int | None,
        mid_id: int | None,
        cname: str | None,
        *,
        tcc_id: int | None = None,
        rtx: tuple[int, int] | None = None,
    ) -> None:
        """What the negotiation decided for this stream (from aiortc's send parameters).

        ``tcc_id``: the transport-wide sequence number extension's id, when the viewer also
        negotiated transport-cc feedback; ``rtx``: (payload type, SSRC) of its RTX stream.
        """
        self.ssrc = ssrc
        self.pt = pt
        self.cname = (cname or "livecart").encode()[:255]
        mid_bytes = (mid or "").encode()[:16]
        if not mid_bytes:
            mid_id = None
        self.ext_key = (abs_send_time_id, mid_id, mid_bytes, tcc_id)
        self.b0 = 0x90 if abs_send_time_id is not None or mid_id is not None or tcc_id is not None else 0x80
        if rtx is not None:
            self.rtx_pt, self.rtx_ssrc = rtx
        ext_len = len(_extensions(self.ext_key, b"\x00\x00\x00"))
        if tcc_id is not None:
            # The block ends with the 2-byte number and the padding after it (see _extensions).
            body = (4 if abs_send_time_id is not None else 0) + (1 + len(mid_bytes) if mid_id is not None else 0) + 3
            self.tcc_pack = struct.Struct(f"!BBHII{ext_len}sH{-body % 4}x")
            self.tcc_pad = -body % 4
            self.bwe = SendSideEstimator()
            ext_len += 2 + (-body % 4)
        self.overhead = HEADER.size + ext_len + SRTP_TAG

    def sender_report(self, media_time_s: float, now_s: float) -> bytes:
        """An RTCP compound packet (SR + SDES CNAME): maps our RTP time to wall-clock time."""
        rtp_ts = self.rewriter.out_ts(round(media_time_s * self.clock_hz))
        info = RtcpSenderInfo(
            ntp_timestamp=ntp_timestamp(now_s),
            rtp_timestamp=rtp_ts,
            packet_count=self.packets & 0xFFFFFFFF,
            octet_count=self.octets & 0xFFFFFFFF,
        )
        sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, self.cname)])])
        return bytes(RtcpSrPacket(ssrc=self.ssrc, sender_info=info)) + bytes(sdes)


class ViewerTracks:
    """The outgoing streams of one viewer and the rung it watches, as the fan-out sees them."""

    __slots__ = ("active", "audio", "held", "pending", "repair_previous", "rung", "video", "wanted")

    def __init__(self, video: TrackOut, audio: TrackOut | None) -> None:
        self.video = video
        self.audio = audio
        self.rung: str | None = None  # the rung whose frames it gets now
        self.pending: str | None = None  # the rung it moves to at that rung's next keyframe
        self.wanted: str | None = None  # the rung asked for before the viewer's link is up
        # Set while ``rung``'s video is held back until ``pending`` starts (a switch down): the
        # old rung's next sequence number and last media time when it stopped.
        self.held: tuple[int, int | None] | None = None
        # Whether NACKs for the previous rung's packets are answered after a switch: not after a
        # held one (those frames were given up; the new keyframe supersedes them).
        self.repair_previous = True
        self.active = False

    def outs(self) -> list[TrackOut]:
        return [self.video] if self.audio is None else [self.video, self.audio]


# (abs-send-time id, mid id, mid, transport-wide sequence number id): what a viewer's extension
# block holds; viewers with the same key share one block per frame.
ExtKey = tuple[int | None, int | None, bytes, int | None]


def _extensions(key: ExtKey, ast: bytes) -> bytes:
    """The header extension block for ``key``; with a transport-wide number negotiated, the block
    up to and including that element's id byte (the number and padding are packed per packet)."""
    ast_id, mid_id, mid, tcc_id = key
    elements = []
    if ast_id is not None:
        elements.append((ast_id, ast))
    if mid_id is not None:
        elements.append((mid_id, mid))
    if tcc_id is None:
        return one_byte_extensions(elements)
    block = one_byte_extensions([*elements, (tcc_id, b"\x00\x00")])
    return block[: 4 + sum(1 + len(v) for _, v in elements) + 1]


def send_frame(out: TrackOut, frame: RtpFrame, ext: bytes, now: float) -> None:
    """The per-viewer, per-frame hot path: header, SRTP and one batched send per frame.

    Where the link has the compiled loop (``link.native``) the frame goes there whole; the
    Python loop below is the fallback and the reference it is tested against (same bytes).
    """
    link = out.link
    if link is None:
        return
    b0 = out.b0
    pt = out.pt
    ssrc = out.ssrc
    rewriter = out.rewriter
    seq = frame.first_seq + rewriter.seq_off
    ts = (frame.ts + rewriter.ts_off) & 0xFFFFFFFF
    payloads = frame.payloads
    last = len(payloads) - 1
    tcc = out.tcc_pack
    t = out.tseq
    native = link.native
    if native is not None:
        native(b0, pt, seq, ts, ssrc, ext, out.tcc_pad, t, payloads, frame.runs)
    else:
        protect = link.protect
        if tcc is None:
            pack = HEADER.pack
            packets = [protect(pack(b0, pt, (seq + i) & 0xFFFF, ts, ssrc) + ext + p) for i, p in enumerate(frame.head)]
            packets.append(protect(pack(b0, pt | 0x80, (seq + last) & 0xFFFF, ts, ssrc) + ext + payloads[last]))
        else:
            stamp = tcc.pack
            packets = [
                protect(stamp(b0, pt, (seq + i) & 0xFFFF, ts, ssrc, ext, (t + i) & 0xFFFF) + p)
                for i, p in enumerate(frame.head)
            ]
            tail = stamp(b0, pt | 0x80, (seq + last) & 0xFFFF, ts, ssrc, ext, (t + last) & 0xFFFF)
            packets.append(protect(tail + payloads[last]))
        link.send_runs(packets, frame.runs)
    if tcc is not None:
        out.tseq = t + last + 1
        if out.bwe is not None:
            out.bwe.sent(t, last + 1, frame.octets + (last + 1) * out.overhead, now)
    out.packets += last + 1
    out.octets += frame.octets


def _log(out: TrackOut, first: int, octets: int, now: float, cluster: int) -> None:
    """Repairs or probe packets sent in one call, from transport-wide number ``first`` on: one
    entry in the estimator's send log for all of them (the feedback is then walked per call)."""
    if out.bwe is not None and out.tseq > first:
        out.bwe.sent(first, out.tseq - first, octets, now, cluster)


class Fanout:
    """Delivers each encoded frame of one stream to the viewers of its rung.

    ``request_keyframe(rung)`` asks the transcoder for an IDR; ``on_switched(viewer_id, rung)``
    is told when a viewer's switch (or first rung) took effect, after the first frame of it
    was sent: the viewer's ``video.rewriter.anchor`` is then that mapping's (the player's clock).
    """

    def __init__(
        self,
        request_keyframe: Callable[[str], None],
        on_switched: Callable[[str, str], None],
        *,
        keyframe_min_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_broken: Callable[[str, str], None] = lambda viewer_id, reason: None,
    ) -> None:
        self._request_keyframe = request_keyframe
        self._on_switched = on_switched
        self._on_broken = on_broken
        self._viewers: dict[str, ViewerTracks] = {}
        self._rungs: dict[str, RungState] = {}
        self._audio = RungState()
        self._join_window_s = keyframe_min_interval_s
        self._clock = clock
        self._wall = wall_clock
        self.frames_forwarded = 0
        self.packets_forwarded = 0
        self.bytes_forwarded = 0  # RTP payload bytes sent to viewers (payloads x viewers)
        self.retransmitted = 0
        self.repairs_held = 0  # NACKed packets not resent because the viewer was held for a switch down
        self.probe_bytes = 0  # probe traffic sent to viewers
        self.nack_reports = 0  # NACK RTCP packets received from viewers
        self.nacked_packets = 0  # packets those reports asked for
        self.keyframe_requests = 0
        self.send_errors = 0  # viewers dropped because sending to them raised

    def __len__(self) -> int:
        return len(self._viewers)

    # ---- viewers ------------------------------------------------------------------------------
    def new_tracks(self, viewer_id: str, with_audio: bool) -> ViewerTracks:
        return ViewerTracks(TrackOut("video"), TrackOut("audio") if with_audio else None)

    def _rung(self, name: str) -> RungState:
        state = self._rungs.get(name)
        if state is None:
            state = self._rungs[name] = RungState()
        return state

    def last_video_pts(self) -> int | None:
        """The pts of the newest video frame sent on any rung (None before the first)."""
        return max((r.last.ts for r in self._rungs.values() if r.last is not None), default=None)

    def tracks(self, viewer_id: str) -> ViewerTracks | None:
        return self._viewers.get(viewer_id)

    def is_switching(self, viewer_id: str) -> bool:
        tracks = self._viewers.get(viewer_id)
        return tracks is not None and tracks.pending is not None

    def viewers_on(self, rung: str) -> int:
        state = self._rungs.get(rung)
        return 0 if state is None else len(state.members)

    def rung_of(self, viewer_id: str) -> str | None:
        tracks = self._viewers.get(viewer_id)
        return None if tracks is None else (tracks.pending or tracks.rung or tracks.wanted)

    def links(self) -> list[Link]:
        seen: dict[int, Link] = {}
        for tracks in self._viewers.values():
            link = tracks.video.link
            if link is not None:
                seen[id(link)] = link
        return list(seen.values())

    def attach(self, viewer_id: str, tracks: ViewerTracks, rung: str) -> None:
        """Register a viewer that will watch ``rung`` once ``activate`` says its link is up."""
        self._viewers[viewer_id] = tracks
        tracks.wanted = rung

    def activate(self, viewer_id: str, kind: str, link: Link) -> None:
        """One of the viewer's streams is connected (``link``): start sending on it.

        Video starts at a keyframe: if its rung made one moments ago, the viewer starts from it
        (the cached frames since) and no new IDR is needed; otherwise one is requested.
        """
        tracks = self._viewers.get(viewer_id)
        if tracks is None:  # the viewer left while connecting: nobody will use this link
            link.close()
            return
        out = tracks.video if kind == "video" else tracks.audio
        if out is None or out.link is not None:
            return
        out.link = link
        if kind != "video":
            out.rewriter.start(self._audio, self._audio.next_seq)
            self._audio.members[viewer_id] = tracks
            return
        tracks.active = True
        rung = tracks.wanted
        tracks.wanted = None
        if rung is None:
            return
        state = self._rung(rung)
        cached = state.gop.fresh(self._clock(), self._join_window_s)
        if cached:
            out = tracks.video
            out.rewriter.start(state, cached[0].first_seq, cached[0].ts)
            ext = _extensions(out.ext_key, abs_send_time(self._wall()))
            now = self._clock()
            for frame in cached:
                send_frame(out, frame, ext, now)
            tracks.rung = rung
            state.members[viewer_id] = tracks
            self._on_switched(viewer_id, rung)
            return
        tracks.pending = rung
        state.pending[viewer_id] = tracks
        self._ask_keyframe(rung)

    def switch(self, viewer_id: str, rung: str, *, hold: bool = False) -> None:
        """Move a viewer to ``rung`` at that rung's next keyframe (requested now).

        ``hold``: stop sending it the current rung's video now rather than at the switch. For a
        move down on a congested link: those frames would mostly be lost anyway, and the queue
        they keep full in front of the viewer would delay (or drop) the new rung's keyframe;
        held, the queue drains while the keyframe is on its way. Its repairs are refused
        meanwhile (the keyframe supersedes what they would repair).
        """
        tracks = self._viewers.get(viewer_id)
        if tracks is None:
            return
        if not tracks.active:
            tracks.wanted = rung
            return
        if tracks.pending is not None:
            self._rung(tracks.pending).pending.pop(viewer_id, None)
            tracks.pending = None
        if rung == tracks.rung and tracks.held is None:
            return
        if hold and tracks.held is None and tracks.rung is not None:
            old = self._rungs.get(tracks.rung)
            if old is not None and old.members.pop(viewer_id, None) is not None:
                tracks.held = (old.next_seq, old.last.ts if old.last is not None else None)
        tracks.pending = rung
        self._rung(rung).pending[viewer_id] = tracks
        self._ask_keyframe(rung)

    def detach(self, viewer_id: str) -> None:
        tracks = self._viewers.pop(viewer_id, None)
        if tracks is None:
            return
        for state in (*self._rungs.values(), self._audio):
            state.members.pop(viewer_id, None)
            state.pending.pop(viewer_id, None)
        links = {id(out.link): out.link for out in tracks.outs() if out.link is not None}
        for out in tracks.outs():
            out.link = None
        for link in links.values():
            link.close()

    def _drop_broken(self, broken: list[tuple[str, Exception]]) -> None:
        """Viewers whose send failed are detached and reported (their session is then closed)."""
        for viewer_id, exc in broken:
            self.send_errors += 1
            self.detach(viewer_id)
            self._on_broken(viewer_id, f"{type(exc).__name__}: {exc}")

    def _ask_keyframe(self, rung: str) -> None:
        self.keyframe_requests += 1
        self._request_keyframe(rung)

    # ---- frames (hot path) --------------------------------------------------------------------
    def publish(self, frame: EncodedFrame) -> None:
        """Packetise once, then per viewer only header + SRTP + one batched send; never awaits."""
        now = self._wall()
        mono = self._clock()
        if frame.kind == AUDIO:
            state = self._audio
            rtp = state.add([frame.data], frame.pts, True)
        else:
            payloads = packetize_vp8(frame.data) if frame.codec == VP8 else packetize_h264(frame.data)
            if not payloads:  # nothing to send (e.g. only an access unit delimiter)
                return
            state = self._rung(frame.rung)
            rtp = state.add(payloads, frame.pts, frame.keyframe)
            state.gop.add(rtp, frame.keyframe, mono)
        members = state.members
        if members:
            ast = abs_send_time(now)
            exts: dict[ExtKey, bytes] = {}
            is_audio = frame.kind == AUDIO
            broken = None
            for viewer_id, tracks in members.items():
                out = tracks.audio if is_audio else tracks.video
                if out is None:
                    continue
                key = out.ext_key
                ext = exts.get(key)
                if ext is None:
                    ext = exts[key] = _extensions(key, ast)
                try:
                    send_frame(out, rtp, ext, mono)
                except Exception as exc:  # one viewer's SRTP trouble must not stop the others
                    broken = broken or []
                    broken.append((viewer_id, exc))
            if broken:
                self._drop_broken(broken)
            self.frames_forwarded += len(members)
            self.packets_forwarded += len(members) * len(rtp.payloads)
            self.bytes_forwarded += len(members) * rtp.octets
        if frame.keyframe and state.pending and frame.kind != AUDIO:
            self._promote(frame.rung, state, rtp, now, mono)

    def _promote(self, rung: str, state: RungState, keyframe: RtpFrame, now: float, mono: float) -> None:
        """Viewers waiting for ``rung`` switch to it now, on its keyframe.

        The viewer's rewriter keeps its sequence numbers and timestamps continuous across it.
        """
        waiting = state.pending
        state.pending = {}
        ast = abs_send_time(now)
        for viewer_id, tracks in waiting.items():
            out = tracks.video
            old = self._rungs.get(tracks.rung) if tracks.rung is not None else None
            if old is not None:
                old.members.pop(viewer_id, None)
                # Held: the old rung's numbers continue from where it stopped, not from now.
                old_next, last_ts = tracks.held or (old.next_seq, old.last.ts if old.last is not None else None)
                tracks.repair_previous = tracks.held is None
                tracks.held = None
                out.rewriter.switch(state, keyframe.first_seq, keyframe.ts, old_next, last_ts)
            else:
                out.rewriter.start(state, keyframe.first_seq, keyframe.ts)
            try:
                send_frame(out, keyframe, _extensions(out.ext_key, ast), mono)
            except Exception as exc:
                self._drop_broken([(viewer_id, exc)])
                continue
            self.frames_forwarded += 1
            self.packets_forwarded += len(keyframe.payloads)
            self.bytes_forwarded += keyframe.octets
            tracks.rung = rung
            tracks.pending = None
            state.members[viewer_id] = tracks
            self._on_switched(viewer_id, rung)

    def remap(self, available: list[str], choose: Callable[[str], str]) -> None:
        """The stream's rungs changed: move viewers off rungs that no longer exist."""
        for name in [r for r in self._rungs if r not in available]:
            state = self._rungs[name]
            state.gop.clear()
            # Members stay in the old rung's table (which gets no more frames) until their switch
            # takes effect, so their sequence numbers continue across it.
            for viewer_id in [*state.members, *state.pending]:
                self.switch(viewer_id, choose(name))
        for tracks in self._viewers.values():
            if not tracks.active and tracks.wanted is not None and tracks.wanted not in available:
                tracks.wanted = choose(tracks.wanted)

    # ---- RTCP ---------------------------------------------------------------------------------
    def retransmit(self, viewer_id: str, kind: str, lost: list[int]) -> int:
        """Answer a NACK from the rung's shared history, re-protected for this viewer.

        Video repairs draw on the viewer's ``RepairBudget`` (too old, resent within a round trip,
        or over budget: refused and counted) and go on its RTX stream where negotiated.
        """
        self.nack_reports += 1
        self.nacked_packets += len(lost)
        tracks = self._viewers.get(viewer_id)
        if tracks is None:
            return 0
        out = tracks.video if kind == "video" else tracks.audio
        link = None if out is None else out.link
        if out is None or link is None:
            return 0
        if kind == "video" and tracks.held is not None:
            self.repairs_held += min(len(lost), MAX_NACKED_PER_REPORT)
            return 0
        ext = _extensions(out.ext_key, abs_send_time(self._wall()))
        now = self._clock()
        resolve = out.rewriter.resolve
        budget = out.repair if kind == "video" and out.bwe is not None else None
        sent = 0
        octets = 0
        first_t = out.tseq
        for seq16 in lost[:MAX_NACKED_PER_REPORT]:
            origin = resolve(seq16)
            if origin is None:
                continue
            state, source_seq, ts_off = origin
            if state is not out.rewriter.source and not tracks.repair_previous and kind == "video":
                self.repairs_held += 1
                continue
            entry = state.find(source_seq)
            if entry is None:
                continue
            _, payload, ts, marker = entry
            if budget is not None:
                newest = state.last.ts if state.last is not None else ts
                age_s = ((newest - ts) & 0xFFFFFFFF) / out.clock_hz
                if not budget.allow(seq16, len(payload) + out.overhead, age_s, now):
                    continue
            try:
                octets += self._resend(out, link, ext, seq16, payload, (ts + ts_off) & 0xFFFFFFFF, marker)
            except Exception:  # an SRTP refusal (e.g. session closing) drops this one packet
                continue
            sent += 1
        _log(out, first_t, octets, now, 0)
        self.retransmitted += sent
        return sent

    def _resend(
        self,
        out: TrackOut,
        link: Link,
        ext: bytes,
        seq16: int,
        payload: bytes,
        ts: int,
        marker: bool,
    ) -> int:
        """Send one packet again (on RTX if negotiated), stamped if the viewer has transport-cc;
        returns the bytes it put on the wire. The caller logs the packets it sent this way in
        the estimator, once per call (``_log``)."""
        m = 0x80 if marker else 0
        if out.rtx_pt is not None:
            pt, seq, ssrc = out.rtx_pt | m, out.rtx_seq, out.rtx_ssrc
            out.rtx_seq = (seq + 1) & 0xFFFF
            body = OSN.pack(seq16) + payload
        else:
            pt, seq, ssrc, body = out.pt | m, seq16, out.ssrc, payload
        tcc = out.tcc_pack
        if tcc is None:
            packet = HEADER.pack(out.b0, pt, seq, ts, ssrc) + ext + body
        else:
            packet = tcc.pack(out.b0, pt, seq, ts, ssrc, ext, out.tseq & 0xFFFF) + body
            out.tseq += 1
        link.send_one(link.protect(packet))
        return len(packet) + SRTP_TAG

    def probe(self, viewer_id: str, octets: int, cluster: int) -> int:
        """Send about ``octets`` of probe traffic to a viewer now: copies of packets it already
        has (on its RTX stream where negotiated, else duplicates its jitter buffer drops),
        stamped as probe ``cluster``. Returns the bytes sent (0 if it has nothing to copy)."""
        tracks = self._viewers.get(viewer_id)
        if tracks is None or tracks.rung is None or tracks.pending is not None:
            return 0  # not while a switch is on its way (held, or about to change rungs)
        out = tracks.video
        link = out.link
        state = self._rungs.get(tracks.rung)
        if link is None or state is None or out.tcc_pack is None or out.rewriter.source is not state:
            return 0
        ext = _extensions(out.ext_key, abs_send_time(self._wall()))
        now = self._clock()
        sent = 0
        back = 1
        first_t = out.tseq
        while sent < octets and back <= 32:
            entry = state.history.find((state.next_seq - back) & 0xFFFF)
            back += 1
            if entry is None:
                break
            seq, payload, ts, marker = entry
            out_seq = out.rewriter.out_seq(seq)
            origin = out.rewriter.resolve(out_seq)
            if origin is None or origin[0] is not state or origin[1] != seq & 0xFFFF:
                break  # from before this viewer's switch to the rung: not a packet it was sent
            try:
                sent += self._resend(out, link, ext, out_seq, payload, out.rewriter.out_ts(ts), marker)
            except Exception:
                break
        _log(out, first_t, sent, now, cluster)
        self.probe_bytes += sent
        return sent

    def send_reports(self, media_time_s: float) -> int:
        """A sender report on every outgoing stream that has sent media (call about once a second)."""
        now = self._wall()
        count = 0
        for tracks in self._viewers.values():
            for out in tracks.outs():
                if out.packets and out.link is not None:
                    out.link.send_rtcp(out.sender_report(media_time_s, now))
                    count += 1
        return count
