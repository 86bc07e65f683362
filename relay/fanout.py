"""Fan-out: one stream's encoded frames to every viewer, each on the rung it watches.

This is the per-frame, per-viewer path. Each viewer has one aiortc ``RTCRtpSender`` per track
fed with pre-encoded ``av.Packet``s (the sender only packetises them); the packet is built once
per frame and shared by every viewer of that rung. A later fast path replaces ``PacketTrack``
and the senders behind this same ``Fanout`` interface.

Rung switches take effect on a keyframe of the target rung. The viewer's sender keeps its SSRC
and sequence numbers, and every rung's timestamps come from the stream's one media clock, so the
viewer sees one continuous RTP stream whose resolution changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from transcode.frames import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, EncodedFrame

VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)
AUDIO_TIME_BASE = Fraction(1, AUDIO_CLOCK_HZ)
VIDEO_QUEUE_FRAMES = 30  # ~1 s at 30 fps; past that the viewer skips to the next keyframe
AUDIO_QUEUE_FRAMES = 50  # ~1 s of 20 ms Opus packets; past that the oldest are dropped
GOP_CACHE_FRAMES = 90  # frames kept since each rung's last keyframe, for instant joins


class PacketTrack(MediaStreamTrack):
    """An outgoing track whose ``recv()`` hands pre-encoded packets to aiortc's sender.

    Its queue is bounded. A video track starts (and restarts after an overflow) at a keyframe:
    until one arrives, frames are skipped and counted, so a slow viewer never grows memory and
    never decodes a broken reference chain.
    """

    def __init__(self, kind: str, on_need_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        size = VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES
        self._queue: asyncio.Queue[av.Packet[Any]] = asyncio.Queue(size)
        self._need_keyframe = kind == "video"
        self._on_need_keyframe = on_need_keyframe
        self.skipped = 0
        self.sent = 0
        self.first_pts: int | None = None  # media pts of the first packet the sender took
        self.on_first: Callable[[int], None] | None = None

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._need_keyframe

    def push(self, packet: av.Packet[Any], keyframe: bool) -> None:
        if self._need_keyframe:
            if not keyframe:
                self.skipped += 1
                return
            self._need_keyframe = False
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.skipped += 1 + self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video":
                self._need_keyframe = True
                self._on_need_keyframe()
            else:
                self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if self.first_pts is None and packet.pts is not None:
            self.first_pts = packet.pts
            if self.on_first is not None:
                self.on_first(packet.pts)
        self.sent += 1
        return packet


class ViewerTracks:
    """The outgoing tracks of one viewer and the rung it watches, as the fan-out sees them."""

    __slots__ = ("audio", "pending", "rung", "video")

    def __init__(self, video: PacketTrack, audio: PacketTrack | None) -> None:
        self.video = video
        self.audio = audio
        self.rung: str | None = None  # the rung whose frames it gets now
        self.pending: str | None = None  # the rung it moves to at that rung's next keyframe


class Fanout:
    """Delivers each encoded frame of one stream to the viewers of its rung.

    ``request_keyframe(rung)`` asks the transcoder for an IDR; ``on_switched(viewer_id, rung)``
    is told when a viewer's switch took effect.
    """

    def __init__(
        self,
        request_keyframe: Callable[[str], None],
        on_switched: Callable[[str, str], None],
        *,
        keyframe_min_interval_s: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._request_keyframe = request_keyframe
        self._on_switched = on_switched
        self._viewers: dict[str, ViewerTracks] = {}
        self._by_rung: dict[str, dict[str, ViewerTracks]] = {}
        self._pending: dict[str, dict[str, ViewerTracks]] = {}
        self._gop: dict[str, list[tuple[av.Packet[Any], bool]]] = {}
        self._gop_started_at: dict[str, float] = {}
        self._last_pts: dict[str, int] = {}  # the newest video pts each rung has sent
        self._join_window_s = keyframe_min_interval_s
        self._clock = clock or asyncio.get_running_loop().time
        self.frames_forwarded = 0

    def __len__(self) -> int:
        return len(self._viewers)

    def new_tracks(self, viewer_id: str, with_audio: bool) -> ViewerTracks:
        video = PacketTrack("video", lambda: self._resync(viewer_id))
        audio = PacketTrack("audio", lambda: None) if with_audio else None
        return ViewerTracks(video, audio)

    def last_video_pts(self) -> int | None:
        """The pts of the newest video frame sent on any rung (None before the first)."""
        return max(self._last_pts.values(), default=None)

    def is_switching(self, viewer_id: str) -> bool:
        tracks = self._viewers.get(viewer_id)
        return tracks is not None and tracks.pending is not None

    def viewers_on(self, rung: str) -> int:
        return len(self._by_rung.get(rung, ()))

    def rung_of(self, viewer_id: str) -> str | None:
        tracks = self._viewers.get(viewer_id)
        return None if tracks is None else (tracks.pending or tracks.rung)

    def attach(self, viewer_id: str, tracks: ViewerTracks, rung: str) -> None:
        """Start sending ``rung`` to a new viewer.

        If that rung made a keyframe moments ago, the viewer starts from it (the cached frames
        since) and no new IDR is needed; otherwise it waits for one, which is requested.
        """
        self._viewers[viewer_id] = tracks
        gop = self._gop.get(rung)
        started = self._gop_started_at.get(rung)
        if gop and started is not None and self._clock() - started < self._join_window_s:
            tracks.rung = rung
            self._by_rung.setdefault(rung, {})[viewer_id] = tracks
            for packet, is_keyframe in gop:
                tracks.video.push(packet, is_keyframe)
            self._on_switched(viewer_id, rung)
            return
        tracks.pending = rung
        self._pending.setdefault(rung, {})[viewer_id] = tracks
        self._request_keyframe(rung)

    def switch(self, viewer_id: str, rung: str) -> None:
        """Move a viewer to ``rung`` at that rung's next keyframe (requested now)."""
        tracks = self._viewers.get(viewer_id)
        if tracks is None:
            return
        if tracks.pending is not None:
            self._pending.get(tracks.pending, {}).pop(viewer_id, None)
            tracks.pending = None
        if rung == tracks.rung:
            return
        tracks.pending = rung
        self._pending.setdefault(rung, {})[viewer_id] = tracks
        self._request_keyframe(rung)

    def _resync(self, viewer_id: str) -> None:
        tracks = self._viewers.get(viewer_id)
        if tracks is not None and tracks.rung is not None:
            self._request_keyframe(tracks.rung)

    def detach(self, viewer_id: str) -> None:
        tracks = self._viewers.pop(viewer_id, None)
        if tracks is None:
            return
        for table in (self._by_rung, self._pending):
            for members in table.values():
                members.pop(viewer_id, None)
        tracks.video.stop()
        if tracks.audio is not None:
            tracks.audio.stop()

    def publish(self, frame: EncodedFrame) -> None:
        """Hot path: one av.Packet per frame, shared by every viewer; no await, no logging."""
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        if frame.kind == "audio":
            packet.time_base = AUDIO_TIME_BASE
            for tracks in self._viewers.values():
                if tracks.audio is not None:
                    tracks.audio.push(packet, True)
            self.frames_forwarded += len(self._viewers)
            return
        packet.time_base = VIDEO_TIME_BASE
        rung = frame.rung
        keyframe = frame.keyframe
        if keyframe:
            self._gop[rung] = [(packet, True)]
            self._gop_started_at[rung] = self._clock()
        else:
            gop = self._gop.get(rung)
            if gop is not None and len(gop) < GOP_CACHE_FRAMES:
                gop.append((packet, False))
        self._last_pts[rung] = frame.pts
        members = self._by_rung.get(rung)
        if members:
            for tracks in members.values():
                tracks.video.push(packet, keyframe)
            self.frames_forwarded += len(members)
        if keyframe:
            waiting = self._pending.get(rung)
            if waiting:
                self._promote(rung, waiting, packet)

    def _promote(self, rung: str, waiting: dict[str, ViewerTracks], keyframe: av.Packet[Any]) -> None:
        """Viewers waiting for ``rung`` switch to it now, on its keyframe ``keyframe``.

        Every rung encodes the same source frames with the same pts, and rungs finish at
        different moments: the old rung may already have sent this very frame. RTP timestamps
        must then still move forward, so such a viewer gets its own copy of the keyframe one
        clock tick after what it has already seen (only on a switch, never per frame).
        """
        self._pending[rung] = {}
        target = self._by_rung.setdefault(rung, {})
        for viewer_id, tracks in waiting.items():
            packet = keyframe
            if tracks.rung is not None:
                self._by_rung.get(tracks.rung, {}).pop(viewer_id, None)
                seen = self._last_pts.get(tracks.rung, -1)
                if keyframe.pts is not None and seen >= keyframe.pts:
                    packet = av.Packet(bytes(keyframe))
                    packet.pts = seen + 1
                    packet.time_base = VIDEO_TIME_BASE
            tracks.video.push(packet, True)
            self.frames_forwarded += 1
            tracks.rung = rung
            tracks.pending = None
            target[viewer_id] = tracks
            self._on_switched(viewer_id, rung)

    def remap(self, available: list[str], choose: Callable[[str], str]) -> None:
        """The stream's rungs changed: move viewers off rungs that no longer exist."""
        for table in (self._by_rung, self._pending):
            for rung in [r for r in table if r not in available]:
                for viewer_id in list(table[rung]):
                    tracks = self._viewers[viewer_id]
                    if table is self._by_rung:
                        tracks.rung = None
                    self.switch(viewer_id, choose(rung))
                table.pop(rung, None)
        for rung in [r for r in self._gop if r not in available]:
            self._gop.pop(rung)
            self._gop_started_at.pop(rung, None)
