"""Fan-out: one stream's encoded frames to every viewer's outgoing tracks.

This is the per-frame, per-viewer path. For now each viewer has one aiortc ``RTCRtpSender``
per track fed with pre-encoded ``av.Packet``s (the sender only packetises them). The packet is
built once per frame and shared by every viewer. A later fast path replaces ``PacketTrack`` and
the senders behind this same ``Fanout`` interface.
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

_TIME_BASES = {"video": Fraction(1, VIDEO_CLOCK_HZ), "audio": Fraction(1, AUDIO_CLOCK_HZ)}
VIDEO_QUEUE_FRAMES = 30  # ~1 s at 30 fps; past that the viewer skips to the next keyframe
AUDIO_QUEUE_FRAMES = 50  # ~1 s of 20 ms Opus packets; past that the oldest are dropped


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
        self.sent += 1
        return packet


class ViewerTracks:
    """The outgoing tracks of one viewer, as the fan-out sees them."""

    __slots__ = ("audio", "video")

    def __init__(self, video: PacketTrack, audio: PacketTrack | None) -> None:
        self.video = video
        self.audio = audio


class Fanout:
    """Delivers each encoded frame of one stream to all attached viewers.

    ``request_keyframe`` is called when a viewer joins or has to resynchronise.
    """

    def __init__(self, request_keyframe: Callable[[], None]) -> None:
        self._request_keyframe = request_keyframe
        self._viewers: dict[str, ViewerTracks] = {}
        self.frames_forwarded = 0

    def __len__(self) -> int:
        return len(self._viewers)

    def new_tracks(self, with_audio: bool) -> ViewerTracks:
        video = PacketTrack("video", self._request_keyframe)
        audio = PacketTrack("audio", self._request_keyframe) if with_audio else None
        return ViewerTracks(video, audio)

    def attach(self, viewer_id: str, tracks: ViewerTracks) -> None:
        self._viewers[viewer_id] = tracks
        self._request_keyframe()

    def detach(self, viewer_id: str) -> None:
        tracks = self._viewers.pop(viewer_id, None)
        if tracks is not None:
            tracks.video.stop()
            if tracks.audio is not None:
                tracks.audio.stop()

    def publish(self, frame: EncodedFrame) -> None:
        """Hot path: one av.Packet per frame, shared by every viewer; no await, no logging."""
        if not self._viewers:
            return
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = _TIME_BASES[frame.kind]
        keyframe = frame.keyframe
        if frame.kind == "video":
            for tracks in self._viewers.values():
                tracks.video.push(packet, keyframe)
        else:
            for tracks in self._viewers.values():
                if tracks.audio is not None:
                    tracks.audio.push(packet, keyframe)
        self.frames_forwarded += len(self._viewers)
