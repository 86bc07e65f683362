"""Publisher and viewer for the lossy-link and UDP-garbage tests, run inside the test's network namespace.

Publishes a counter pattern, watches it, prints ``{"ports": [...]}`` (the viewer's local UDP
ports, or with ``--lossy-publisher`` the publisher's, so the test can drop packets on that link
only), waits for ``go`` on stdin, then prints ``{"decoded": D, "expected": E, "max_gap_s": G}``:
of the next ``--seconds`` x 30 frames the publisher made (numbered in the picture), how many the
viewer decoded, and the longest time between two frames reaching the viewer.

``--lossy-publisher`` publishes with aiortc's own H.264 encoder, which answers PLI (the default
is x264 pre-encoded, which does not). ``--outages N`` then cuts the publisher's link N times for
``--outage-s`` each (an nftables rule in the namespace's ``lossy`` table) and reports in
``recovery_s`` how long after each the viewer got its first frame made after the link returned.

    python -m tests.e2e.lossy_peer --base http://127.0.0.1:PORT --stream live --key KEY --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import socket
import subprocess
import sys
import time

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher


async def main(args: argparse.Namespace) -> None:
    async with aiohttp.ClientSession() as http:
        if args.lossy_publisher:  # aiortc's encoder: it honours PLI
            publisher = WhipPublisher(
                args.base, args.stream, args.key, width=640, height=360, video_codec="H264", audio=False, grain=True
            )
        else:
            publisher = WhipPublisher(args.base, args.stream, args.key, width=640, height=360, h264=True, audio=False)
        viewer = WhepViewer(args.base, args.stream, data_channel=False, audio=False)
        try:
            await publisher.start(http)
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 20)
            peer = publisher.pc if args.lossy_publisher else viewer.pc
            dtls = peer.getTransceivers()[0].receiver.transport
            pair = dtls.transport._connection._nominated[1]
            print(json.dumps({"ports": [pair.local_addr[1]]}), flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)  # "go": the loss is in place
            first = viewer.record.frames[-1].counter
            sprayed = 0
            if args.garbage:
                ports = _candidate_ports(publisher.answer) | _candidate_ports(viewer.answer)
                sprayed = await loop.run_in_executor(None, _spray, sorted(ports), 3.0)
            recovery = []
            for _ in range(args.outages):
                recovery.append(await _outage(publisher, viewer, pair.local_addr[1], args.outage_s))
            if args.outages:
                first = viewer.record.frames[-1].counter
            last = first + int(args.seconds * 30)  # the publisher draws its frame number: 30 per second
            await viewer.wait_for(lambda r: r.frames[-1].counter >= last, args.seconds * 3)
            decoded = {f.counter for f in viewer.record.frames if first < f.counter <= last}
            times = [f.at for f in viewer.record.frames if first < f.counter <= last]
            gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
            result = {
                "decoded": len(decoded),
                "expected": last - first,
                "max_gap_s": gap,
                "sprayed": sprayed,
                "recovery_s": recovery,
            }
            async with http.get(f"{args.base}/api/streams/{args.stream}") as res:  # while still publishing
                result["ingest"] = (await res.json())["ingest"]
            print(json.dumps(result), flush=True)
        finally:
            await viewer.stop(http)
            await publisher.stop(http)


async def _outage(publisher: WhipPublisher, viewer: WhepViewer, port: int, seconds: float) -> float:
    """Cut the publisher's link for ``seconds``; how long after it returns the viewer sees a new frame."""
    before = viewer.record.frames[-1].counter
    await viewer.wait_for(lambda r: r.frames[-1].counter >= before + 30, 10)  # a second of steady video first
    _nft(f"add rule inet lossy outage udp dport {port} drop\nadd rule inet lossy outage udp sport {port} drop")
    await asyncio.sleep(seconds)  # the outage itself (its length is the scenario, not a wait for an event)
    _nft("flush chain inet lossy outage")
    back = time.monotonic()
    made = publisher.video.counter  # frames numbered above this were made after the link returned
    await viewer.wait_for(lambda r: r.frames[-1].counter > made, 10)
    arrived = next(f.at for f in viewer.record.frames if f.counter > made)
    return arrived - back


def _nft(rules: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=rules + "\n", capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"nft: {done.stderr.strip()}")


def _candidate_ports(answer: str) -> set[int]:
    """The server's UDP ports, from the candidates in an answer."""
    return {int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ 1 udp \d+ 10\.213\.0\.1 (\d+)", answer)}


def _spray(ports: list[int], seconds: float) -> int:
    """Random datagrams at the server's media ports: STUN-, DTLS-, RTP- and RTCP-looking, and noise."""
    heads = [b"\x00\x01", b"\x16\xfe\xfd", b"\x80\x60", b"\x80\xc8", b"\x90\xe0", b""]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for port in ports:
                data = random.choice(heads) + os.urandom(random.randint(1, 1400))
                sock.sendto(data, ("10.213.0.1", port))
                sent += 1
            time.sleep(0.0005)  # ~2,000 datagrams per second per port: a nuisance, not a flood
    return sent


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--garbage", action="store_true", help="spray random datagrams at the server's ports")
    parser.add_argument("--lossy-publisher", action="store_true", help="report the publisher's port, not the viewer's")
    parser.add_argument("--outages", type=int, default=0, help="cut the publisher's link this many times")
    parser.add_argument("--outage-s", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
