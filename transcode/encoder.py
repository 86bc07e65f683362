"""PyAV encoders for one rung of video (libx264) and for the stream's audio (libopus; AAC for HLS).

These run in worker threads: PyAV releases the GIL while scaling and encoding. They hold no
locks; each instance is only ever used by one thread at a time (its rung's executor).
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
from av.video.reformatter import VideoReformatter

from transcode.frames import (
    AAC,
    AAC_CHANNELS,
    AAC_FRAME_SAMPLES,
    AUDIO_CLOCK_HZ,
    H264,
    VIDEO_CLOCK_HZ,
    VP8,
    VP8_SUFFIX,
    EncodedFrame,
)
from transcode.rendition import Rendition, rung_kbps, rung_size

VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)
AUDIO_TIME_BASE = Fraction(1, AUDIO_CLOCK_HZ)
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz


class VideoEncoder:
    """Scales decoded frames to one rendition and encodes them as constrained-baseline H.264, or
    as VP8 (``codec=VP8``: for viewers whose offer has no H.264; its frames are named
    ``<rung>-vp8``).

    Rebuilds its codec context when the source size changes (a new publisher, a resolution
    switch in OBS); the first frame after that is an IDR (H.264: with SPS/PPS in band) or a
    VP8 keyframe.
    """

    def __init__(self, rendition: Rendition, *, threads: int = 1, codec: str = H264) -> None:
        if codec not in (H264, VP8):
            raise ValueError(f"unknown video codec {codec!r}")
        self.rendition = rendition
        self.codec = codec
        self.name = rendition.name + (VP8_SUFFIX if codec == VP8 else "")
        self._threads = threads
        self._ctx: av.VideoCodecContext | None = None
        self._source_size: tuple[int, int] | None = None
        self._reformatter = VideoReformatter()
        self.width = 0
        self.height = 0
        self.kbps = 0  # the rate for the current picture (the rung's, scaled by area)
        self.encode_seconds = 0.0

    def _open(self, src_w: int, src_h: int) -> av.VideoCodecContext:
        r = self.rendition
        w, h = rung_size(r, src_w, src_h)
        kbps = rung_kbps(r, w, h)  # a picture smaller (or wider) than the rung's nominal one
        ctx = self._open_vp8(w, h, kbps) if self.codec == VP8 else self._open_h264(w, h, kbps)
        self._ctx = ctx
        self._source_size = (src_w, src_h)
        self.width, self.height, self.kbps = w, h, kbps
        return ctx

    def _context(self, codec: str, w: int, h: int, kbps: int) -> av.VideoCodecContext:
        """What every rung's encoder shares: size, clock, frame rate, rate, GOP, threads."""
        r = self.rendition
        ctx = av.CodecContext.create(codec, "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width, ctx.height = w, h
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = Fraction(r.fps, 1)
        ctx.bit_rate = kbps * 1000
        ctx.gop_size = r.gop_frames
        ctx.thread_count = self._threads
        return ctx

    def _open_vp8(self, w: int, h: int, kbps: int) -> av.VideoCodecContext:
        ctx = self._context("libvpx", w, h, kbps)
        ctx.options = {
            # Live: encode each frame as it comes (no look-ahead, no alt-ref frames that would
            # hold frames back), at libvpx's fastest realtime speed, and let a receiver decode
            # past a lost frame. A forced frame (pict_type I) becomes a VP8 keyframe.
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "error-resilient": "1",
            "static-thresh": "0",
            "maxrate": str(kbps * 1000),
            "bufsize": str(kbps * 1000),
        }
        ctx.open()
        return ctx

    def _open_h264(self, w: int, h: int, kbps: int) -> av.VideoCodecContext:
        r = self.rendition
        ctx = self._context("libx264", w, h, kbps)
        ctx.max_b_frames = 0
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            # In-band SPS/PPS on every IDR (viewers join mid-stream), forced frames are IDRs,
            # no scene-cut keyframes beyond the GOP, and a VBV cap so a rung keeps its rate.
            "x264-params": (
                f"keyint={r.gop_frames}:min-keyint={r.gop_frames}:scenecut=0:"
                f"repeat-headers=1:forced-idr=1:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
            ),
        }
        ctx.open()
        return ctx

    def encode(self, frame: av.VideoFrame, pts: int, force_keyframe: bool) -> list[EncodedFrame]:
        started = time.perf_counter()
        ctx = self._ctx
        if ctx is None or self._source_size != (frame.width, frame.height):
            ctx = self._open(frame.width, frame.height)
            force_keyframe = True
        out = self._reformatter.reformat(frame, self.width, self.height, format="yuv420p")
        out.pts = pts
        out.time_base = VIDEO_TIME_BASE
        out.pict_type = av.video.frame.PictureType.I if force_keyframe else av.video.frame.PictureType.NONE
        packets = ctx.encode(out)
        self.encode_seconds += time.perf_counter() - started
        name, codec = self.name, self.codec
        return [
            EncodedFrame("video", name, bytes(p), p.pts if p.pts is not None else pts, p.is_keyframe, codec)
            for p in packets
        ]


class AudioEncoder:
    """Encodes the stream's audio once as 20 ms Opus packets, whatever the input framing."""

    def __init__(self, *, kbps: int = 64) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = AUDIO_CLOCK_HZ
        ctx.layout = "stereo"
        ctx.format = "s16"
        ctx.bit_rate = kbps * 1000
        ctx.time_base = AUDIO_TIME_BASE
        ctx.options = {"application": "lowdelay", "frame_duration": "20"}
        ctx.open()
        self._ctx = ctx
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_CLOCK_HZ)
        self._fifo = av.AudioFifo()
        self._next_pts: int | None = None

    def encode(self, frame: av.AudioFrame, pts: int) -> list[EncodedFrame]:
        """Encode ``frame`` captured at ``pts`` (48 kHz units from the stream's start)."""
        if self._next_pts is None or abs(pts - self._next_pts) > AUDIO_CLOCK_HZ // 5:
            # First frame, or a gap/drift of over 200 ms (new publisher): re-anchor the clock.
            self._next_pts = pts - self._fifo.samples
        frame.pts = None
        for resampled in self._resampler.resample(frame):
            self._fifo.write(resampled)
        encoded: list[EncodedFrame] = []
        while self._fifo.samples >= OPUS_FRAME_SAMPLES:
            chunk = self._fifo.read(OPUS_FRAME_SAMPLES)
            if chunk is None:
                break
            chunk.pts = self._next_pts
            chunk.time_base = AUDIO_TIME_BASE
            self._next_pts += OPUS_FRAME_SAMPLES
            for p in self._ctx.encode(chunk):
                encoded.append(EncodedFrame("audio", "audio", bytes(p), int(p.pts or 0), True))
        return encoded


class AacEncoder:
    """Encodes the stream's audio once as AAC-LC (FFmpeg's own encoder), for HLS players.

    Browsers' HLS players (hls.js through Media Source Extensions, Safari) take AAC in fMP4, not
    Opus; WebRTC viewers keep Opus. Output frames are named ``AAC`` and stamped on the same 48 kHz
    clock as the Opus ones.
    """

    def __init__(self, *, kbps: int = 96) -> None:
        ctx = av.CodecContext.create("aac", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = AUDIO_CLOCK_HZ
        ctx.layout = "stereo" if AAC_CHANNELS == 2 else "mono"
        ctx.format = "fltp"
        ctx.bit_rate = kbps * 1000
        ctx.time_base = AUDIO_TIME_BASE
        ctx.options = {"aac_coder": "fast"}  # the default two-loop search costs several times more CPU
        ctx.open()
        self._ctx = ctx
        self._resampler = av.AudioResampler(format="fltp", layout=ctx.layout, rate=AUDIO_CLOCK_HZ)
        self._fifo = av.AudioFifo()
        self._next_pts: int | None = None
        self.encode_seconds = 0.0

    def encode(self, frame: av.AudioFrame, pts: int) -> list[EncodedFrame]:
        """Encode ``frame`` captured at ``pts`` (48 kHz units from the stream's start)."""
        started = time.thread_time()  # CPU, not wall: the cost HLS adds
        if self._next_pts is None or pts - self._next_pts > AUDIO_CLOCK_HZ // 5:
            # First frame, or a gap (a new publisher): re-anchor. Never backwards: frames that
            # arrive in a burst keep their counted times, so the fMP4 track's times only grow.
            self._next_pts = pts - self._fifo.samples
        for resampled in self._resampler.resample(frame):
            resampled.pts = None
            self._fifo.write(resampled)
        encoded: list[EncodedFrame] = []
        while self._fifo.samples >= AAC_FRAME_SAMPLES:
            chunk = self._fifo.read(AAC_FRAME_SAMPLES)
            if chunk is None:
                break
            chunk.pts = self._next_pts
            chunk.time_base = AUDIO_TIME_BASE
            self._next_pts += AAC_FRAME_SAMPLES
            for p in self._ctx.encode(chunk):
                encoded.append(EncodedFrame("audio", AAC, bytes(p), int(p.pts or 0), True, AAC))
        self.encode_seconds += time.thread_time() - started
        return encoded
