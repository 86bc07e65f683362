"""Transcode benchmark: what the rendition ladder costs per source frame, per rung.

Run: ``python -m benchmarks.transcode_bench [--frames 300] [--sources 720p,1080p] [--passthrough]``

``--passthrough`` puts a rung of each source's own size on top of the ladder (1080p: 1920x1080
at 6 Mbit/s) and reports the ladder's cost twice in the same run: with that rung transcoded, and
with it forwarded as the publisher sent it (LiveCart's "source" rung: no scale, no encode; the
decode stays, the lower rungs need it).

Camera-like content (a moving gradient and box with grain noise, so the encoder has real work)
is encoded once at a publisher's bitrate; the benchmark then runs LiveCart's own path on it:
decode once (PyAV, one thread, as aiortc's receiver does), then each rung's ``VideoEncoder``
(reused scaler + libx264). CPU time is per thread (``time.thread_time``), so the figures are
cores used at 30 fps and real-time factors, whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import fractions
import os
import platform
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from transcode.encoder import VideoEncoder
from transcode.rendition import DEFAULT_LADDER, Rendition, active_rungs

SOURCES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30


def camera_like_stream(width: int, height: int, frames: int, kbps: int) -> list[av.Packet[Any]]:
    """H.264 packets of ``frames`` camera-like frames, as a publisher would send them."""
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 90000)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = kbps * 1000
    ctx.gop_size = 60
    ctx.max_b_frames = 0
    ctx.options = {"preset": "veryfast", "tune": "zerolatency"}
    ctx.open()
    rng = np.random.default_rng(3)
    noise = [rng.integers(-6, 7, (height, width), dtype=np.int16) for _ in range(6)]  # sensor grain
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int16)
    packets: list[av.Packet[Any]] = []
    for n in range(frames):
        luma = ((xx + yy // 2 + n * 4) % 180 + 40 + noise[n % len(noise)]).astype(np.int16)
        x = (n * 9) % (width - width // 5)
        luma[height // 3 : height // 3 + height // 5, x : x + width // 5] += 50
        yuv = np.empty((height * 3 // 2, width), dtype=np.uint8)
        yuv[:height] = np.clip(luma, 0, 255)
        yuv[height:] = 128 + ((n // 10) % 20)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = n * 3000
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    return packets


def decode_all(packets: list[av.Packet[Any]]) -> tuple[list[av.VideoFrame], float]:
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    frames: list[av.VideoFrame] = []
    started = time.thread_time()
    for packet in packets:
        frames.extend(f for f in decoder.decode(packet) if isinstance(f, av.VideoFrame))
    return frames, time.thread_time() - started


def bench_rung(rendition: Rendition, frames: list[av.VideoFrame]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, output bytes) to scale and encode every frame once."""
    encoder = VideoEncoder(rendition)
    out_bytes = 0
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for n, frame in enumerate(frames):
        for encoded in encoder.encode(frame, n * 3000, False):
            out_bytes += len(encoded.data)
    return time.thread_time() - cpu0, time.perf_counter() - wall0, out_bytes


def run(frame_count: int, sources: list[str], passthrough: bool = False) -> str:
    spec = ((("1080p", 1920, 1080, 6000),) if passthrough else ()) + DEFAULT_LADDER
    ladder = [Rendition(n, w, h, k, FPS, 2 * FPS) for n, w, h, k in spec]
    lines = [
        "| source | stage | output | fps (one core) | real-time factor | cores at 30 fps | kbit/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for source in sources:
        width, height = SOURCES[source]
        packets = camera_like_stream(width, height, frame_count, kbps=6000 if height >= 1080 else 4000)
        frames, decode_cpu = decode_all(packets)
        n = len(frames)
        seconds = n / FPS
        total = decode_cpu
        lines.append(
            f"| {source} | decode (once) | {width}x{height} | {n / decode_cpu:.0f} | "
            f"{n / decode_cpu / FPS:.1f}x | {decode_cpu / seconds:.3f} | - |"
        )
        top_cpu = 0.0
        for rung in active_rungs(ladder, width, height):
            cpu, _wall, out_bytes = bench_rung(rung, frames)
            total += cpu
            if rung.short_side == min(width, height):
                top_cpu = cpu  # the rung of the source's own size: what passthrough saves
            lines.append(
                f"| {source} | {rung.name} scale+encode | {rung.short_side}p short side | {n / cpu:.0f} | "
                f"{n / cpu / FPS:.1f}x | {cpu / seconds:.3f} | {out_bytes * 8 / seconds / 1000:.0f} |"
            )
        lines.append(
            f"| {source} | **whole ladder + decode** | | {n / total:.0f} | {n / total / FPS:.1f}x | "
            f"**{total / seconds:.3f}** | |"
        )
        if passthrough:
            kept = total - top_cpu
            lines.append(
                f"| {source} | **same, top rung passthrough** | {width}x{height} forwarded | {n / kept:.0f} | "
                f"{n / kept / FPS:.1f}x | **{kept / seconds:.3f}** (saves {top_cpu / seconds:.3f}, "
                f"{top_cpu / total:.0%}) | |"
            )
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, PyAV {av.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="source frames per run (default 300 = 10 s)")
    parser.add_argument("--sources", default="720p,1080p", help="comma-separated: 720p, 1080p")
    parser.add_argument("--passthrough", action="store_true", help="compare a transcoded and a forwarded top rung")
    args = parser.parse_args()
    table = run(args.frames, args.sources.split(","), args.passthrough)
    print(f"Machine: {machine()}\n")
    print(table)


if __name__ == "__main__":
    main()
