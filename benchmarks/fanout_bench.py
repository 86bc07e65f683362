"""Micro-benchmark of the fan-out hot path alone: CPU per packet per viewer, no WebRTC handshake.

Each simulated viewer gets its own SRTP session (the cipher aiortc negotiates with Chromium,
AES-GCM, unless ``--cipher cm``) and its own UDP socket sending to a loopback port nobody reads,
so the figure includes SRTP and the kernel's send path, as in the server. Run::

    python -m benchmarks.fanout_bench --viewers 200 --seconds 5 [--profile] [--tcc] [--python]

``--python`` keeps the pure-Python send loop where the compiled one (relay/media/_sendloop.c) is built.

``--tcc`` gives every viewer transport-wide congestion control as a browser negotiates it: each
packet stamped with the viewer's transport-wide number, each frame's send times recorded in its
estimator, and transport-cc feedback for every packet (one SRTCP packet per viewer every
``--feedback-every`` frames, default 3, ~100 ms) through the server's path for it: unprotect,
``split_compound``, ``SendSideControl.on_tcc`` (parse, estimator, ABR, repair budget), and a
probe per viewer every ``--probe-every`` seconds (default 2, the ABR's shortest interval: 60 ms
of RTX copies at 1.3 times the rung's rate), paced as the server paces them. Frames leave on a simulated clock (frame n
at n/30 s) as fast as the CPU allows; the viewers' side (building the feedback) is not counted.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import time
from itertools import pairwise

from pylibsrtp import Policy, Session

from relay.media.bwe import SendSideEstimator
from relay.media.fanout import Fanout, TrackOut
from relay.media.twcc import DELTA_US, REFERENCE_US, build_feedback, feedback_packet, split_compound
from relay.media.udplink import UdpLink
from relay.sessions.rungs import RungChoice
from relay.sessions.sendside import SendSideControl
from transcode.frames import EncodedFrame
from transcode.rendition import Rendition


def _srtp(cipher: str, key: bytes | None = None, inbound: bool = False) -> Session:
    gcm = cipher == "gcm"
    profile = Policy.SRTP_PROFILE_AEAD_AES_128_GCM if gcm else Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    direction = Policy.SSRC_ANY_INBOUND if inbound else Policy.SSRC_ANY_OUTBOUND
    policy = Policy(key=key or os.urandom(28 if gcm else 30), ssrc_type=direction, srtp_profile=profile)
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


class _Receivers:
    """The viewers' side of transport-cc, kept out of the server's CPU figure: what each viewer
    reports (every packet arrives 20 ms after it left, 0.1 ms after the one before it), in
    SRTCP as a browser sends it. Viewers that were sent the same numbers at the same times
    (all of them, in this bench) share one built report."""

    def __init__(self, srtp: Session) -> None:
        self._srtp = srtp
        self._acked: dict[int, int] = {}  # viewer -> next number to report
        self._count = 0
        self._built: dict[tuple[int, int, float], bytes | None] = {}

    def report(self, n: int, out: TrackOut) -> bytes | None:
        bwe = out.bwe
        start = self._acked.get(n, 0)
        if bwe is None or out.tseq <= start:
            return None
        self._acked[n] = out.tseq
        key = (start, out.tseq, bwe._batches[-1][2])
        if key not in self._built:
            if len(self._built) > 64:
                self._built.clear()
            self._built[key] = self._build(start, bwe)
        return self._built[key]

    def _build(self, start: int, bwe: SendSideEstimator) -> bytes | None:
        times: list[float] = []
        for first, count, at, _cluster, _size in bwe._batches:  # the bench plays the receiver
            if first + count <= start:
                continue
            times.extend(at + 0.02 + i * 1e-4 for i in range(max(0, start - first), count))
        if not times:
            return None
        ref = int(times[0] * 1e6) // REFERENCE_US
        ticks = [round(t * 1e6 / DELTA_US) for t in times]
        deltas = [ticks[0] - ref * (REFERENCE_US // DELTA_US), *(b - a for a, b in pairwise(ticks))]
        self._count += 1
        rtcp = feedback_packet(1, 1000, build_feedback(start, ref, self._count, deltas))
        return self._srtp.protect_rtcp(rtcp)


def run(
    viewers: int,
    seconds: float,
    kbps: int,
    cipher: str,
    gso: bool,
    profile: bool,
    tcc: bool = False,
    feedback: bool = False,
    feedback_every: int = 3,
    probe_every_s: float = 2.0,
    native: bool = True,
) -> dict[str, float]:
    """Push ``seconds`` of frames to ``viewers`` as fast as possible on a simulated clock (frame
    n leaves at n/30 s); with ``feedback`` each viewer's transport-cc reports go through the
    server's own path for them: SRTCP unprotect, ``split_compound``, ``SendSideControl.on_tcc``
    (parse, estimator, ABR, repair budget, probes started), and probes are paced as the server
    paces them (``SendSideControl.pace``)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    sim = [0.0]
    clock = lambda: sim[0]  # noqa: E731
    fanout = Fanout(lambda rung: None, lambda v, r: None, clock=clock)
    ladder = [Rendition("720p", 1280, 720, kbps, 30, 60), Rendition("480p", 854, 480, 1000, 30, 60)]
    rungs = RungChoice(ladder)
    rungs.set_encoded(["720p", "480p"], 0.0)
    control = SendSideControl(
        "bench", fanout, rungs, lambda v, r, why: None, rung_bytes=dict, audio_bps=64_000, clock=clock
    )
    key = os.urandom(28 if cipher == "gcm" else 30)
    sockets = []
    inbound = []
    for n in range(viewers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sockets.append(sock)
        tracks = fanout.new_tracks(str(n), with_audio=False)
        tracks.video.configure(1000 + n, 102, "0", 3, 1, "bench", tcc_id=5 if tcc else None, rtx=(103, 5000 + n))
        fanout.attach(str(n), tracks, "720p")
        rungs.add(str(n), "720p")
        fanout.activate(str(n), "video", UdpLink(sock, addr, _srtp(cipher), gso=gso, native=native))
        inbound.append(_srtp(cipher, key, inbound=True))
    receivers = _Receivers(_srtp(cipher, key))
    frames = _frames(kbps, 30, seconds)
    profiler = cProfile.Profile() if profile else None
    client_cpu = 0.0
    feedback_cpu = 0.0
    start_cpu = time.process_time()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    outs = [t.video for n in range(viewers) if (t := fanout.tracks(str(n))) is not None]
    for count, frame in enumerate(frames):
        sim[0] = count / 30
        fanout.publish(frame)
        if not feedback:
            continue
        if probe_every_s > 0:
            # Each viewer probes every ``probe_every_s`` (its ABR's shortest interval), staggered.
            period = round(probe_every_s * 30)
            for n in range(count % period, viewers, period):
                control.start_probe(str(n), "720p", 1.3 * kbps * 1000, sim[0])
        control.pace(sim[0])
        if count % feedback_every == feedback_every - 1:
            begin = time.process_time()
            reports = [receivers.report(n, out) for n, out in enumerate(outs)]
            begin_server = time.process_time()
            client_cpu += begin_server - begin
            for n, data in enumerate(reports):
                if data is None:
                    continue
                blocks, _rest = split_compound(inbound[n].unprotect_rtcp(data))
                for fci in blocks:
                    control.on_tcc(str(n), fci)
            feedback_cpu += time.process_time() - begin_server
    if profiler:
        profiler.disable()
    cpu = time.process_time() - start_cpu - client_cpu
    wall = time.perf_counter() - start
    packets = fanout.packets_forwarded
    for link in fanout.links():
        link.close()
    sink.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    return {
        "native": int(all(link.native is not None for link in fanout.links())) if viewers else 0,
        "viewers": viewers,
        "packets": packets,
        "probe_packets": sum(out.tseq for out in outs) - packets if tcc else 0,
        "cpu_s": cpu,
        "feedback_cpu_s": feedback_cpu,
        "feedback_us_per_report": feedback_cpu / max(1, control.feedback) * 1e6,
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
    parser.add_argument("--feedback-every", type=int, default=3, help="frames between a viewer's feedback packets")
    parser.add_argument("--probe-every", type=float, default=2.0, help="seconds between a viewer's probes (0: none)")
    parser.add_argument(
        "--python", action="store_true", help="the pure-Python send loop even where the compiled one is built"
    )
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
        args.feedback_every,
        args.probe_every,
        native=not args.python,
    )
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
