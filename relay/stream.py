"""One configured stream: its transcoder, fan-out, current publisher and viewers."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Protocol

from relay.config import StreamConfig, TranscodeConfig
from relay.fanout import Fanout
from relay.viewer import ViewerSession
from transcode.frames import EncodedFrame
from transcode.pipeline import StreamTranscoder
from transcode.rendition import Rendition

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What a stream needs of its publisher: a WHIP session or the demo source."""

    id: str

    @property
    def label(self) -> str: ...

    @property
    def task_count(self) -> int: ...

    async def close(self, reason: str) -> None: ...


def rendition_for(transcode: TranscodeConfig) -> Rendition:
    """The one rung of the walking skeleton: the source capped at the configured box."""
    return Rendition(
        name=f"{transcode.max_height}p",
        max_width=transcode.max_width,
        max_height=transcode.max_height,
        video_kbps=transcode.video_kbps,
        fps=transcode.fps,
        gop_frames=max(1, round(transcode.gop_s * transcode.fps)),
    )


class Stream:
    """Owns one stream's transcoder and fan-out; tracks who publishes and who watches.

    Viewers stay connected while the stream is offline and resume at the next keyframe when
    a publisher returns; the ``cards`` channel tells them ``{"type": "stream", "live": ...}``.
    """

    def __init__(self, config: StreamConfig, transcode: TranscodeConfig) -> None:
        self.config = config
        self.name = config.name
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._loop = loop
        self.transcoder = StreamTranscoder(
            config.name,
            rendition_for(transcode),
            clock=self.media_time,
            on_frame=self._on_frame,
            keyframe_min_interval_s=transcode.keyframe_min_interval_ms / 1000,
            audio_kbps=transcode.audio_kbps,
            encoder_threads=transcode.encoder_threads,
        )
        self.fanout = Fanout(self.transcoder.request_keyframe)
        self.publisher: Publisher | None = None
        self.viewers: dict[str, ViewerSession] = {}

    def media_time(self) -> float:
        """Seconds since the stream object was created: the stream's media clock."""
        return self._loop.time() - self._t0

    @property
    def live(self) -> bool:
        return self.publisher is not None

    def _on_frame(self, frame: EncodedFrame) -> None:
        self.fanout.publish(frame)

    def state_message(self) -> str:
        return json.dumps({"type": "stream", "stream": self.name, "live": self.live})

    def broadcast(self, message: str) -> None:
        for viewer in self.viewers.values():
            viewer.send(message)

    def set_publisher(self, publisher: Publisher | None) -> None:
        was_live = self.live
        self.publisher = publisher
        if was_live != self.live:
            log.info("stream %s is %s", self.name, "live" if self.live else "offline")
            self.broadcast(self.state_message())

    def add_viewer(self, viewer: ViewerSession) -> None:
        self.viewers[viewer.id] = viewer
        self.fanout.attach(viewer.id, viewer.tracks)

    def remove_viewer(self, viewer_id: str) -> None:
        self.viewers.pop(viewer_id, None)
        self.fanout.detach(viewer_id)

    def snapshot(self) -> dict[str, object]:
        stats = self.transcoder.stats()
        return {
            "name": self.name,
            "live": self.live,
            "publisher": self.publisher.id[:8] if self.publisher is not None else None,
            "viewers": len(self.viewers),
            "rungs": [
                {
                    "name": stats.rung,
                    "width": stats.width,
                    "height": stats.height,
                    "frames_in": stats.frames_in,
                    "frames_out": stats.frames_out,
                    "frames_dropped": stats.frames_dropped,
                    "encode_calls": stats.encode_calls,
                    "keyframes": stats.keyframes,
                    "keyframes_forced": stats.keyframes_forced,
                    "bytes_out": stats.bytes_out,
                    "encode_ms_total": stats.encode_ms_total,
                }
            ],
            "frames_forwarded": self.fanout.frames_forwarded,
        }

    async def close(self) -> None:
        await self.transcoder.close()
