"""One rung of the ladder at run time: its encoder, worker thread, input slot and counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import av

from transcode.encoder import VideoEncoder
from transcode.frames import H264, EncodedFrame, EncoderStats
from transcode.keyframes import KeyframeGate
from transcode.rendition import Rendition

log = logging.getLogger(__name__)


class RungEncoder:
    """Owns one rung's encoder, its single worker thread and the task that feeds it.

    At most one frame waits: a newer frame replaces it (counted as dropped), so a slow encoder
    drops frames instead of building delay. Keyframe requests go through a ``KeyframeGate``.
    """

    def __init__(
        self,
        stream: str,
        rendition: Rendition,
        *,
        on_frame: Callable[[EncodedFrame], None],
        keyframe_min_interval_s: float,
        threads: int = 1,
        codec: str = H264,
    ) -> None:
        self.rendition = rendition
        self._encoder = VideoEncoder(rendition, threads=threads, codec=codec)
        self.name = self._encoder.name
        self.codec = codec
        self._label = f"transcode {stream}/{self.name}"
        self._on_frame = on_frame
        self.gate = KeyframeGate(keyframe_min_interval_s)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"enc-{stream}-{self.name}")
        self._pending: tuple[av.VideoFrame, int] | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.encode_calls = 0
        self.keyframes = 0
        self.keyframes_forced = 0
        self.bytes_out = 0
        self.last_keyframe_at: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._encoder.width, self._encoder.height

    def offer(self, frame: av.VideoFrame, pts: int) -> None:
        self.frames_in += 1
        if self._pending is not None:
            self.frames_dropped += 1
        self._pending = (frame, pts)
        self._ready.set()

    def start(self) -> None:
        """Start the task that feeds the encoder thread; ``close`` stops it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._label)

    def request_keyframe(self) -> None:
        self.gate.request(time.monotonic())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            self._ready.clear()
            pending, self._pending = self._pending, None
            if pending is None:
                continue
            frame, pts = pending
            now = time.monotonic()
            force = self.gate.should_force(now)
            try:
                out = await loop.run_in_executor(self._pool, self._encoder.encode, frame, pts, force)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: encode failed: %s", self._label, exc)
                continue
            self.encode_calls += 1
            for encoded in out:
                self.frames_out += 1
                self.bytes_out += len(encoded.data)
                if encoded.keyframe:
                    self.keyframes += 1
                    self.keyframes_forced += force
                    self.last_keyframe_at = now
                    self.gate.keyframe_sent(now)
                try:
                    self._on_frame(encoded)
                except Exception as exc:  # a consumer's bug must not stop the encoder for everyone
                    log.error("%s: delivering a frame failed: %s: %s", self._label, type(exc).__name__, exc)

    def stats(self) -> EncoderStats:
        width, height = self.size
        return EncoderStats(
            rung=self.name,
            width=width,
            height=height,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=self.frames_dropped,
            encode_calls=self.encode_calls,
            keyframes=self.keyframes,
            keyframes_forced=self.keyframes_forced,
            bytes_out=self.bytes_out,
            encode_ms_total=round(self._encoder.encode_seconds * 1000, 1),
            kbps=self._encoder.kbps,
            codec=self.codec,
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)
