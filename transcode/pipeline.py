"""One stream's transcoder: decoded frames in (on the loop), encoded frames of each rung out.

The publisher's video is decoded once (by its receiver); each rung scales that decoded frame
with its own reused scaler and encodes it once, in its own worker thread. Audio is encoded once
for all rungs, in one more thread (and, for HLS, once more as AAC in a thread of its own, so the
Opus path keeps its timing). The set of rungs follows the source size: rungs above the
source are never encoded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import av

from ingest.h264 import has_b_slices
from ingest.jitter import AssembledFrame
from transcode.encoder import AacEncoder, AudioEncoder
from transcode.frames import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, VP8, VP8_SUFFIX, EncodedFrame, EncoderStats
from transcode.passthrough import PassthroughRung
from transcode.rendition import SOURCE, Rendition, active_rungs, rung_size
from transcode.rung import RungEncoder
from transcode.timing import SourceClock

log = logging.getLogger(__name__)

AUDIO_QUEUE_FRAMES = 25  # 0.5 s of 20 ms frames; older audio is dropped when full


def _source_ticks(frame: av.VideoFrame) -> int | None:
    """The frame's capture time in 90 kHz ticks (its RTP timestamp, from the decoders), if any."""
    base = frame.time_base
    if frame.pts is None or base is None:
        return None
    return frame.pts * base.numerator * VIDEO_CLOCK_HZ // base.denominator


class StreamTranscoder:
    """Owns one stream's rung encoders, the audio encoder, their threads and tasks.

    ``clock()`` returns seconds since the stream started. A video frame's output ``pts`` is its
    own capture time (RTP timestamp, or pts) anchored to that clock by ``SourceClock``, the
    same for the frame on every rung and continuous across publishers; audio is stamped with the
    clock when it arrives.
    ``on_frame`` receives every encoded frame on the event loop; ``on_rungs`` is told the active
    rungs (name -> encoded size) whenever the source size changes them; ``on_media`` is told
    when a new publisher's first video frame arrives.
    """

    def __init__(
        self,
        name: str,
        ladder: Sequence[Rendition],
        *,
        clock: Callable[[], float],
        on_frame: Callable[[EncodedFrame], None],
        on_rungs: Callable[[dict[str, tuple[int, int]]], None],
        keyframe_min_interval_s: float,
        audio_kbps: int = 64,
        encoder_threads: int = 1,
        on_media: Callable[[], None] | None = None,
        aac_kbps: int | None = None,
    ) -> None:
        self.name = name
        self.ladder = tuple(r for r in ladder if r.name != SOURCE)  # the rungs to encode
        self._passthrough_allowed = any(r.name == SOURCE for r in ladder)  # the stream's passthrough = "auto"
        # The current publisher's frames can be forwarded (H.264 seen, no B-frames): the source
        # rung exists, and the ladder rung of the source's own size is not encoded.
        self._passthrough = False
        self._upstream: Callable[[], None] | None = None  # the publisher whose frames are forwarded
        self._encoded_fresh = False  # encoded frames came since the last on_source_started
        self.source: PassthroughRung | None = None
        self._clock = clock
        self._video_clock = SourceClock()
        self._on_frame = on_frame
        self._on_rungs = on_rungs
        self._on_media = on_media
        self._keyframe_min_interval_s = keyframe_min_interval_s
        self._encoder_threads = encoder_threads
        self.rungs: dict[str, RungEncoder] = {}
        # VP8 renditions ("480p-vp8" -> encoder), only while a viewer without H.264 wants one.
        self.vp8: dict[str, RungEncoder] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self._retired: list[RungEncoder] = []
        self._source_size: tuple[int, int] | None = None
        self._audio_kbps = audio_kbps
        self._audio: AudioEncoder | None = None
        self._audio_pool = ThreadPoolExecutor(1, thread_name_prefix=f"enc-{name}-audio")
        self._audio_queue: deque[tuple[av.AudioFrame, int]] = deque(maxlen=AUDIO_QUEUE_FRAMES)
        self._audio_ready = asyncio.Event()
        self._audio_task: asyncio.Task[None] | None = None
        self.audio_frames_dropped = 0
        # AAC for HLS (aac_kbps set): its own queue, thread and task, beside the Opus ones.
        self._aac_kbps = aac_kbps
        self._aac: AacEncoder | None = None
        self._aac_pool = ThreadPoolExecutor(1, thread_name_prefix=f"enc-{name}-aac") if aac_kbps else None
        self._aac_queue: deque[tuple[av.AudioFrame, int]] = deque(maxlen=AUDIO_QUEUE_FRAMES)
        self._aac_ready = asyncio.Event()
        self._aac_task: asyncio.Task[None] | None = None
        self.aac_frames_dropped = 0
        self._closed = False

    def start(self) -> None:
        """Start the audio task (rung encoders start as the source size brings them); ``close`` ends all."""
        if self._audio_task is None:
            self._audio_task = asyncio.get_running_loop().create_task(
                self._audio_loop(), name=f"transcode {self.name} audio"
            )
        if self._aac_pool is not None and self._aac_task is None:
            self._aac_task = asyncio.get_running_loop().create_task(self._aac_loop(), name=f"transcode {self.name} aac")

    # ---- FrameSink: called on the loop by a publisher session or the demo source ----------
    def on_video(self, frame: av.VideoFrame) -> None:
        if self._closed:
            return
        if self._source_size != (frame.width, frame.height):
            self._resize(frame.width, frame.height)
        pts = self._video_clock.stamp(_source_ticks(frame), round(self._clock() * VIDEO_CLOCK_HZ))
        for rung in self.rungs.values():
            rung.offer(frame, pts)
        for rung in self.vp8.values():
            rung.offer(frame, pts)

    def on_audio(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        if len(self._audio_queue) == self._audio_queue.maxlen:
            self.audio_frames_dropped += 1
        pts = round(self._clock() * AUDIO_CLOCK_HZ)
        self._audio_queue.append((frame, pts))
        self._audio_ready.set()
        if self._aac_pool is not None:
            if len(self._aac_queue) == self._aac_queue.maxlen:
                self.aac_frames_dropped += 1
            self._aac_queue.append((frame, pts))
            self._aac_ready.set()

    def on_encoded_video(self, frame: AssembledFrame, request_keyframe: Callable[[], None]) -> None:
        """A whole encoded frame of the publisher's (before decoding): the source rung's input."""
        if self._closed or not self._passthrough_allowed:
            return
        self._encoded_fresh = True
        if request_keyframe != self._upstream:  # a new publisher: judge its stream afresh
            self._upstream = request_keyframe
            self._set_passthrough(True)
        if self._passthrough and has_b_slices(frame.data):
            log.info("transcode %s: the publisher sends B-frames; the source rung is transcoded", self.name)
            self._set_passthrough(False)
        source = self.source
        if self._passthrough and source is not None:
            source.request_upstream = request_keyframe
            source.forward(frame, self._video_clock.stamp(frame.timestamp, round(self._clock() * VIDEO_CLOCK_HZ)))

    def _set_passthrough(self, on: bool) -> None:
        if on != self._passthrough:
            self._passthrough = on
            if self._source_size is not None:
                self._resize(*self._source_size)

    def on_source_started(self) -> None:
        """A new publisher: viewers must get a keyframe of its picture at once."""
        if not self._encoded_fresh:  # its frames come decoded only (VP8, the demo): nothing to forward
            self._upstream = None
            self._set_passthrough(False)
        self._encoded_fresh = False
        for rung in [*self.rungs.values(), *self.vp8.values()]:
            rung.request_keyframe()
        if self.source is not None:
            self.source.request_keyframe()
        if self._on_media is not None:
            self._on_media()

    # ---- rungs ------------------------------------------------------------------------------
    def _resize(self, width: int, height: int) -> None:
        self._source_size = (width, height)
        wanted = {r.name: r for r in active_rungs(self.ladder, width, height)}
        own_size = (max(2, width // 2 * 2), max(2, height // 2 * 2))
        if self._passthrough:
            # The rung of the source's own size would re-encode what the source rung forwards.
            wanted = {n: r for n, r in wanted.items() if rung_size(r, width, height) != own_size}
            if self.source is None:
                self.source = PassthroughRung(self._on_frame, (width, height))
            self.source.size = (width, height)
        else:
            self.source = None
        for name in list(self.rungs):
            if name not in wanted:
                self._retired.append(self.rungs.pop(name))
        for name, rendition in wanted.items():
            if name not in self.rungs:
                rung = RungEncoder(
                    self.name,
                    rendition,
                    on_frame=self._on_frame,
                    keyframe_min_interval_s=self._keyframe_min_interval_s,
                    threads=self._encoder_threads,
                )
                rung.start()
                self.rungs[name] = rung
        # Keep ladder order (highest first) so callers can rely on it.
        self.rungs = {name: self.rungs[name] for name in wanted}
        self.sizes = {name: rung_size(r, width, height) for name, r in wanted.items()}
        if self.source is not None:
            self.sizes = {SOURCE: (width, height), **self.sizes}
        log.info(
            "transcode %s: source %dx%d -> %s",
            self.name,
            width,
            height,
            ", ".join(f"{n} {w}x{h}" for n, (w, h) in self.sizes.items()),
        )
        self._on_rungs(dict(self.sizes))

    def request_keyframe(self, rung: str) -> None:
        if rung == SOURCE and self.source is not None:
            self.source.request_keyframe()
            return
        encoder = self.rungs.get(rung) or self.vp8.get(rung)
        if encoder is not None:
            encoder.request_keyframe()

    # ---- VP8 renditions, on demand ----------------------------------------------------------
    def want_vp8(self, rung: str) -> None:
        """Start encoding ``rung`` (a ladder rung's name) as VP8 too, if it is not already.

        Its frames are named ``<rung>-vp8``; the first is a keyframe. Stopped by ``set_vp8``.
        """
        if self._closed or rung + VP8_SUFFIX in self.vp8:
            return
        rendition = next((r for r in self.ladder if r.name == rung), None)
        if rendition is None:
            return
        encoder = RungEncoder(
            self.name,
            rendition,
            on_frame=self._on_frame,
            keyframe_min_interval_s=self._keyframe_min_interval_s,
            threads=self._encoder_threads,
            codec=VP8,
        )
        encoder.start()
        self.vp8[encoder.name] = encoder
        log.info("transcode %s: VP8 encoder for %s started", self.name, rung)

    async def set_vp8(self, rungs: set[str]) -> None:
        """Encode exactly these rungs as VP8: start the missing, stop (and join) the others."""
        for rung in rungs:
            self.want_vp8(rung)
        unwanted = [name for name in self.vp8 if name.removesuffix(VP8_SUFFIX) not in rungs]
        stopping = [self.vp8.pop(name) for name in unwanted]
        for encoder in stopping:
            log.info("transcode %s: VP8 encoder for %s stopped (no viewer needs it)", self.name, encoder.rendition.name)
        await asyncio.gather(*(encoder.close() for encoder in stopping))

    def last_keyframe_at(self, rung: str) -> float | None:
        if rung == SOURCE and self.source is not None:
            return self.source.last_keyframe_at
        encoder = self.rungs.get(rung)
        return encoder.last_keyframe_at if encoder is not None else None

    # ---- audio ------------------------------------------------------------------------------
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
                try:
                    self._on_frame(encoded)
                except Exception as exc:  # a consumer's bug must not stop the audio for everyone
                    log.error("transcode %s: delivering audio failed: %s: %s", self.name, type(exc).__name__, exc)

    def _encode_audio(self, batch: list[tuple[av.AudioFrame, int]]) -> list[EncodedFrame]:
        if self._audio is None:
            self._audio = AudioEncoder(kbps=self._audio_kbps)
        out: list[EncodedFrame] = []
        for frame, pts in batch:
            out.extend(self._audio.encode(frame, pts))
        return out

    async def _aac_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._aac_pool is not None
        while True:
            await self._aac_ready.wait()
            self._aac_ready.clear()
            batch = list(self._aac_queue)
            self._aac_queue.clear()
            if not batch:
                continue
            try:
                out = await loop.run_in_executor(self._aac_pool, self._encode_aac, batch)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("transcode %s: AAC encode failed: %s", self.name, exc)
                self._aac = None
                continue
            for encoded in out:
                try:
                    self._on_frame(encoded)
                except Exception as exc:  # a consumer's bug must not stop the audio for everyone
                    log.error("transcode %s: delivering AAC failed: %s: %s", self.name, type(exc).__name__, exc)

    def _encode_aac(self, batch: list[tuple[av.AudioFrame, int]]) -> list[EncodedFrame]:
        if self._aac is None:
            self._aac = AacEncoder(kbps=self._aac_kbps or 96)
        out: list[EncodedFrame] = []
        for frame, pts in batch:
            out.extend(self._aac.encode(frame, pts))
        return out

    @property
    def aac_encode_ms(self) -> float:
        return round(self._aac.encode_seconds * 1000, 1) if self._aac is not None else 0.0

    # ---- introspection and shutdown -------------------------------------------------------
    def stats(self) -> list[EncoderStats]:
        source = [self.source.stats()] if self.source is not None else []
        return source + [rung.stats() for rung in [*self.rungs.values(), *self.vp8.values()]]

    async def close(self) -> None:
        """Stop every task and join every worker thread."""
        self._closed = True
        for task in (self._audio_task, self._aac_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in [*self.rungs.values(), *self.vp8.values(), *self._retired]))
        await asyncio.get_running_loop().run_in_executor(None, self._audio_pool.shutdown)
        if self._aac_pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._aac_pool.shutdown)
