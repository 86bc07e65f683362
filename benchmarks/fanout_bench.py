"""Micro-benchmark of the fan-out hot path alone: CPU per packet per viewer, no WebRTC handshake.

Each simulated viewer gets its own SRTP session (the cipher aiortc negotiates with Chromium,
AES-GCM, unless ``--cipher cm``) and its own UDP socket sending to a loopback port nobody reads,
so the figure includes SRTP and the kernel's send path, as in the server. Run::

    python -m benchmarks.fanout_bench --viewers 200 --seconds 5 [--profile] [--tcc]

``--tcc`` gives every viewer transport-wide congestion control as a browser negotiates it: each
packet stamped with the viewer's transport-wide number, each frame's send times recorded in its
estimator, and transport-cc feedback for every packet parsed and fed to the estimator (one
feedback packet per viewer every 3 frames, ~100 ms), so the figure includes the feedback path.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import time

from pylibsrtp import Policy, Session

from relay.media.fanout import Fanout
from relay.media.twcc import build_feedback, parse_feedback
from relay.media.udplink import UdpLink
from transcode.frames import EncodedFrame


def _srtp(cipher: str) -> Session:
    gcm = cipher == "gcm"
    profile = Policy.SRTP_PROFILE_AEAD_AES_128_GCM if gcm else Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    policy = Policy(key=os.urandom(28 if gcm else 30), ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    policy.allow_repeat_tx = True
    return Session(policy)


def _frames(kbps: int, fps: int, seconds: float) -> list[EncodedFrame]:
    """A GOP-shaped sequence of synthetic H.264 access units at ``kbps``."""
    per_frame = kbps * 1000 // 8 // fps
    frames = []
    for n in range(int(fps * seconds)):
        key = n % (fps * 2) == 0
        size = per_frame * 4 if key else per_frame
        nal = bytes([0x65 if key else 0x41]) + os.urandom(size).replace(b"\x00", b"\x01")
        frames.append(EncodedFrame("video", "720p", b"\x00\x00\x00\x01" + nal, n * 90000 // fps, key))
    return frames


def run(
    viewers: int,
    seconds: float,
    kbps: int,
    cipher: str,
    gso: bool,
    profile: bool,
    tcc: bool = False,
    feedback: bool = False,
) -> dict[str, float]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    fanout = Fanout(lambda rung: None, lambda v, r: None, clock=time.monotonic)
    sockets = []
    for n in range(viewers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sockets.append(sock)
        tracks = fanout.new_tracks(str(n), with_audio=False)
        tracks.video.configure(1000 + n, 102, "0", 3, 1, "bench", tcc_id=5 if tcc else None, rtx=(103, 5000 + n))
        fanout.attach(str(n), tracks, "720p")
        fanout.activate(str(n), "video", UdpLink(sock, addr, _srtp(cipher), gso=gso))
    frames = _frames(kbps, 30, seconds)
    profiler = cProfile.Profile() if profile else None
    start_cpu = time.process_time()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    outs = [t.video for n in range(viewers) if (t := fanout.tracks(str(n))) is not None]
    acked = 0
    for count, frame in enumerate(frames):
        fanout.publish(frame)
        if feedback and count % 3 == 2 and outs:
            # Every viewer got the same packets, so one feedback body (the viewers' side) serves
            # all; what the server pays, parsing and estimating, is done per viewer.
            upto = outs[0].tseq
            fci = build_feedback(acked, 0, count & 0xFF, [4] * (upto - acked))
            acked = upto
            now = time.monotonic()
            for out in outs:
                if out.bwe is not None:
                    out.bwe.on_feedback(parse_feedback(fci), now)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start
    packets = fanout.packets_forwarded
    for link in fanout.links():
        link.close()
    sink.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return {
        "viewers": viewers,
        "packets": packets,
        "cpu_s": cpu,
        "wall_s": wall,
        "us_per_packet_viewer": cpu / packets * 1e6,
        "packets_per_cpu_s": packets / cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of media to push (as fast as possible)")
    parser.add_argument("--kbps", type=int, default=2500)
    parser.add_argument("--cipher", choices=["gcm", "cm"], default="gcm")
    parser.add_argument("--no-gso", action="store_true", help="one sendto per packet instead of UDP GSO")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile profile")
    parser.add_argument("--tcc", action="store_true", help="transport-wide stamping + feedback for every viewer")
    parser.add_argument("--no-feedback", action="store_true", help="with --tcc: stamping only, no feedback parsed")
    args = parser.parse_args()
    result = run(
        args.viewers,
        args.seconds,
        args.kbps,
        args.cipher,
        not args.no_gso,
        args.profile,
        args.tcc,
        args.tcc and not args.no_feedback,
    )
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
