"""The fMP4 writer (relay/hls/fmp4.py): FFmpeg's muxer through PyAV, read back with PyAV."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from relay.hls.fmp4 import Fmp4Writer
from transcode.encoder import AacEncoder

HZ = 90_000


@pytest.fixture(scope="module")
def h264() -> list[tuple[bytes, int, bool]]:
    """4 s of 320x240 H.264 as the rungs make it (Annex-B, SPS/PPS on IDRs), keyframes every 2 s,
    stamped from an arbitrary point of a stream's clock."""
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base, ctx.framerate, ctx.max_b_frames = Fraction(1, HZ), Fraction(30, 1), 0
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=60:repeat-headers=1"}
    ctx.open()
    out = []
    for i in range(120):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), (i * 2) % 256, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = 1_234_567 + i * 3000, Fraction(1, HZ)
        out += [(bytes(p), int(p.pts or 0), p.is_keyframe) for p in ctx.encode(frame)]
    return out


def decode(data: bytes) -> list[tuple[int, int, int]]:
    with av.open(io.BytesIO(data)) as container:
        return [(f.pts or 0, f.width, f.height) for f in container.decode(video=0)]


def test_each_write_flushes_every_earlier_sample_on_the_media_clock(h264: list[tuple[bytes, int, bool]]) -> None:
    writer = Fmp4Writer("video", width=320, height=240)
    first = writer.write(*h264[0])
    assert first.init is not None and first.flushed == b"" and first.accepted
    assert decode(first.init) == []  # ftyp + moov only
    body = b""
    for n, sample in enumerate(h264[1:], 1):
        out = writer.write(*sample)
        body += out.flushed
        # After writing sample n, samples 0..n-1 decode from what came out.
        assert [pts for pts, _, _ in decode(first.init + body)] == [p for _, p, _ in h264[:n]]
        if n == 12:
            break


def test_a_silence_ends_the_muxer_and_the_next_keyframe_starts_a_new_one(h264: list[tuple[bytes, int, bool]]) -> None:
    writer = Fmp4Writer("video", width=320, height=240)
    init = writer.write(*h264[0]).init
    assert init is not None
    body = b"".join(writer.write(*s).flushed for s in h264[1:30])
    late = [(data, pts + 5 * HZ, key) for data, pts, key in h264[30:]]
    skipped = writer.write(*late[0])  # a P-frame after 5 s of nothing: the old muxer ends here
    assert skipped.closed_at == h264[29][1] + 3000 and not skipped.accepted
    body += skipped.flushed
    assert [pts for pts, _, _ in decode(init + body)] == [p for _, p, _ in h264[:30]]
    restarted = next(writer.write(*s) for s in late if s[2])  # waits for the next keyframe
    assert restarted.init is not None and restarted.accepted


def test_finish_completes_the_last_sample_with_its_duration(h264: list[tuple[bytes, int, bool]]) -> None:
    writer = Fmp4Writer("video", width=320, height=240)
    init = writer.write(*h264[0]).init
    assert init is not None
    body = b"".join(writer.write(*s).flushed for s in h264[1:10])
    done = writer.finish()
    assert done.closed_at == h264[9][1] + 3000
    assert len(decode(init + body + done.flushed)) == 10
    assert writer.finish().flushed == b""


def test_aac_from_the_transcoder_is_muxed_and_decodes() -> None:
    encoder = AacEncoder(kbps=96)
    writer = Fmp4Writer("audio", audio_kbps=96)
    tone = (np.sin(np.arange(960 * 100) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    init, body = None, b""
    for i in range(100):
        chunk = np.repeat(tone[i * 960 : (i + 1) * 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48000
        for encoded in encoder.encode(frame, 96_000 + i * 960):
            out = writer.write(encoded.data, encoded.pts, True)
            init = init or out.init
            body += out.flushed
    assert init is not None
    body += writer.finish().flushed
    with av.open(io.BytesIO(init + body)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate, stream.channels) == ("aac", 48000, 2)
        frames = list(container.decode(audio=0))
    assert sum(f.samples for f in frames) >= 90 * 960
    assert frames[0].pts is not None and abs(frames[0].pts - 96_000) <= 1024  # on the stream's clock
