"""One stream's transcoder: decoded frames in (on the loop), encoded frames out (on the loop).

Encoding runs in one worker thread per rung and one for audio. Input is never queued deeper
than one frame per rung: when the encoder is still busy, the newer frame replaces the waiting
one and the replaced frame is counted as dropped, so delay never builds up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import av

from transcode.encoder import AudioEncoder, VideoEncoder
from transcode.frames import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, EncodedFrame, EncoderStats
from transcode.keyframes import KeyframeGate
from transcode.rendition import Rendition

log = logging.getLogger(__name__)

AUDIO_QUEUE_FRAMES = 25  # 0.5 s of 20 ms frames; older audio is dropped when full


class StreamTranscoder:
    """Owns one stream's encoders, their worker threads and the tasks feeding them.

    ``clock()`` returns seconds since the stream started; every output ``pts`` is taken from
    it when the frame arrives, so timestamps stay continuous across publishers.
    ``on_frame`` receives every encoded frame on the event loop.
    """

    def __init__(
        self,
        name: str,
        rendition: Rendition,
        *,
        clock: Callable[[], float],
        on_frame: Callable[[EncodedFrame], None],
        keyframe_min_interval_s: float,
        audio_kbps: int = 64,
        encoder_threads: int = 1,
    ) -> None:
        self.name = name
        self.rendition = rendition
        self._clock = clock
        self._on_frame = on_frame
        self._video = VideoEncoder(rendition, threads=encoder_threads)
        self._audio_kbps = audio_kbps
        self._audio: AudioEncoder | None = None
        self.gate = KeyframeGate(keyframe_min_interval_s)
        self._video_pool = ThreadPoolExecutor(1, thread_name_prefix=f"enc-{name}-{rendition.name}")
        self._audio_pool = ThreadPoolExecutor(1, thread_name_prefix=f"enc-{name}-audio")
        self._pending_video: tuple[av.VideoFrame, int] | None = None
        self._video_ready = asyncio.Event()
        self._audio_queue: deque[tuple[av.AudioFrame, int]] = deque(maxlen=AUDIO_QUEUE_FRAMES)
        self._audio_ready = asyncio.Event()
        self._tasks = [
            asyncio.ensure_future(self._video_loop()),
            asyncio.ensure_future(self._audio_loop()),
        ]
        for task, what in zip(self._tasks, ("video", "audio"), strict=True):
            task.set_name(f"transcode {name} {what}")
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.encode_calls = 0
        self.keyframes = 0
        self.keyframes_forced = 0
        self.bytes_out = 0
        self.audio_frames_dropped = 0
        self._closed = False

    # FrameSink (called on the loop by a publisher session or the demo source)
    def on_video(self, frame: av.VideoFrame) -> None:
        if self._closed:
            return
        self.frames_in += 1
        if self._pending_video is not None:
            self.frames_dropped += 1
        self._pending_video = (frame, round(self._clock() * VIDEO_CLOCK_HZ))
        self._video_ready.set()

    def on_audio(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        if len(self._audio_queue) == self._audio_queue.maxlen:
            self.audio_frames_dropped += 1
        self._audio_queue.append((frame, round(self._clock() * AUDIO_CLOCK_HZ)))
        self._audio_ready.set()

    def on_source_started(self) -> None:
        """A new publisher: viewers must get a keyframe of its picture at once."""
        self.request_keyframe()

    def request_keyframe(self) -> None:
        self.gate.request(time.monotonic())

    async def _video_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._video_ready.wait()
            self._video_ready.clear()
            pending, self._pending_video = self._pending_video, None
            if pending is None:
                continue
            frame, pts = pending
            now = time.monotonic()
            force = self.gate.should_force(now)
            try:
                out = await loop.run_in_executor(self._video_pool, self._video.encode, frame, pts, force)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("transcode %s: video encode failed: %s", self.name, exc)
                continue
            self.encode_calls += 1
            for encoded in out:
                self.frames_out += 1
                self.bytes_out += len(encoded.data)
                if encoded.keyframe:
                    self.keyframes += 1
                    if force:
                        self.keyframes_forced += 1
                    self.gate.keyframe_sent(now)
                self._on_frame(encoded)

    async def _audio_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._audio_ready.wait()
            self._audio_ready.clear()
            batch = list(self._audio_queue)
            self._audio_queue.clear()
            if not batch:
                continue
            try:
                out = await loop.run_in_executor(self._audio_pool, self._encode_audio, batch)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("transcode %s: audio encode failed: %s", self.name, exc)
                self._audio = None  # rebuilt on the next frame
                continue
            for encoded in out:
                self._on_frame(encoded)

    def _encode_audio(self, batch: list[tuple[av.AudioFrame, int]]) -> list[EncodedFrame]:
        if self._audio is None:
            self._audio = AudioEncoder(kbps=self._audio_kbps)
        out: list[EncodedFrame] = []
        for frame, pts in batch:
            out.extend(self._audio.encode(frame, pts))
        return out

    def stats(self) -> EncoderStats:
        return EncoderStats(
            rung=self.rendition.name,
            width=self._video.width,
            height=self._video.height,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=self.frames_dropped,
            encode_calls=self.encode_calls,
            keyframes=self.keyframes,
            keyframes_forced=self.keyframes_forced,
            bytes_out=self.bytes_out,
            encode_ms_total=round(self._video.encode_seconds * 1000, 1),
        )

    async def close(self) -> None:
        """Stop the tasks and join the worker threads."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._video_pool.shutdown)
        await loop.run_in_executor(None, self._audio_pool.shutdown)
