"""Decoding a publisher's H.264 for the transcoded rungs, in one worker thread.

aiortc decodes in a thread of its own too, but feeds it through an unbounded queue: a decoder
that falls behind builds delay without limit. Here at most ``max_pending`` frames wait; past
that (or after a decode error) the waiting ones are dropped and decoding resumes at the next
keyframe, since a P-frame after a dropped one would only decode into garbage.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import av

from ingest.jitter import VIDEO_CLOCK_HZ, AssembledFrame

VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)

log = logging.getLogger(__name__)


class VideoDecoder:
    """Owns one PyAV H.264 decoder, the single thread it runs in and the frames waiting for it.

    ``offer`` (on the loop) never blocks; ``run`` is the task that feeds the thread (its owner
    cancels it) and hands each decoded frame to ``on_frame`` on the loop. ``on_broken`` is told
    when the picture chain broke here (overflow, decode error), so a keyframe can be asked for.
    """

    def __init__(
        self,
        label: str,
        on_frame: Callable[[av.VideoFrame], None],
        on_broken: Callable[[], None],
        *,
        max_pending: int = 15,  # half a second at 30 fps
    ) -> None:
        self._label = label
        self._on_frame = on_frame
        self._on_broken = on_broken
        self._pending: deque[AssembledFrame] = deque()
        self._max_pending = max_pending
        self._ready = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"dec-{label}")
        self._codec: av.VideoCodecContext | None = None
        self._need_keyframe = True
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.decode_errors = 0

    def offer(self, frame: AssembledFrame) -> None:
        if self._need_keyframe and not frame.keyframe:
            self.frames_dropped += 1
            return
        if frame.keyframe:
            self._need_keyframe = False
        if len(self._pending) >= self._max_pending:
            # Behind by more than the queue: drop it all, restart at a keyframe (this one if it is).
            self.frames_dropped += len(self._pending)
            self._pending.clear()
            if not frame.keyframe:
                self.frames_dropped += 1
                self._need_keyframe = True
                self._on_broken()
                return
        self._pending.append(frame)
        self._ready.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._pending:
                    # Everything waiting goes to the thread in one call: after the loop was busy
                    # (a burst of DTLS handshakes), one round trip per frame would leave the
                    # decoder idle between frames and the queue overflowing.
                    batch = [(frame.data, frame.timestamp) for frame in self._pending]
                    self._pending.clear()
                    try:
                        decoded = await loop.run_in_executor(self._pool, self._decode_all, batch)
                    except (av.FFmpegError, ValueError) as exc:
                        self.decode_errors += 1
                        log.warning("%s: decoding a frame failed: %s", self._label, exc)
                        self._pending.clear()
                        self._need_keyframe = True
                        self._on_broken()
                        break
                    for picture in decoded:
                        self.frames_decoded += 1
                        self._on_frame(picture)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _decode_all(self, batch: list[tuple[bytes, int]]) -> list[av.VideoFrame]:
        return [picture for data, timestamp in batch for picture in self._decode(data, timestamp)]

    def _decode(self, data: bytes, timestamp: int) -> list[av.VideoFrame]:
        if self._codec is None:
            codec = av.CodecContext.create("h264", "r")
            assert isinstance(codec, av.VideoCodecContext)
            # Frame threads would add a frame of delay per thread; the rungs want it now.
            codec.thread_type = "SLICE"
            self._codec = codec
        # The frame's RTP timestamp rides through as its pts (90 kHz): the transcoder keeps the
        # camera's spacing from it (transcode/timing.py).
        packet = av.Packet(data)
        packet.pts = packet.dts = timestamp
        packet.time_base = VIDEO_TIME_BASE
        return [f for f in self._codec.decode(packet) if isinstance(f, av.VideoFrame)]
