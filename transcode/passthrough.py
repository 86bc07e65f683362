"""The "source" rung: the publisher's own encoded frames, forwarded as they are.

Decoding and re-encoding the top rung costs the most CPU of the ladder and only loses quality
when the publisher already sends H.264 that viewers decode (no B-frames, packetization-mode 1,
as OBS does). This rung encodes nothing: it stamps each frame with the stream's media clock and
hands it on; a keyframe request goes to the publisher (a PLI), which OBS ignores, so viewers
rely on the fan-out's GOP cache to join.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingest.jitter import AssembledFrame
from transcode.frames import EncodedFrame, EncoderStats
from transcode.rendition import SOURCE


class PassthroughRung:
    """Owns the source rung's counters and the way to ask the current publisher for a keyframe."""

    name = SOURCE

    def __init__(self, on_frame: Callable[[EncodedFrame], None], size: tuple[int, int]) -> None:
        self._on_frame = on_frame
        self.size = size
        self.request_upstream: Callable[[], None] | None = None
        self.frames_in = 0
        self.keyframes = 0
        self.keyframes_requested = 0
        self.bytes_out = 0
        self.last_keyframe_at: float | None = None

    def forward(self, frame: AssembledFrame, pts: int) -> None:
        self.frames_in += 1
        self.bytes_out += len(frame.data)
        if frame.keyframe:
            self.keyframes += 1
            self.last_keyframe_at = time.monotonic()
        self._on_frame(EncodedFrame("video", SOURCE, frame.data, pts, frame.keyframe))

    def request_keyframe(self) -> None:
        if self.request_upstream is not None:
            self.keyframes_requested += 1
            self.request_upstream()

    def stats(self) -> EncoderStats:
        width, height = self.size
        return EncoderStats(
            rung=SOURCE,
            width=width,
            height=height,
            frames_in=self.frames_in,
            frames_out=self.frames_in,
            frames_dropped=0,
            encode_calls=0,
            keyframes=self.keyframes,
            keyframes_forced=0,
            bytes_out=self.bytes_out,
            encode_ms_total=0.0,
            passthrough=True,
        )
