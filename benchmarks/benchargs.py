"""The options of ``livecart bench``, apart from the client itself so that the ``livecart``
command line can list them without importing the benchmark (aiortc peers, worker processes).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--stream", required=True, help="stream name to watch (and publish to)")
    parser.add_argument("--key", default=None, help="the stream's publish key (needed with --publish synthetic)")
    parser.add_argument(
        "--viewers", default="20", help="viewer count, or a comma list of levels run one after the other (20)"
    )
    parser.add_argument("--ramp", type=float, default=20.0, help="viewers started per second (20)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per level (10)")
    parser.add_argument("--rendition", default="auto", help="rendition name, or auto (auto)")
    parser.add_argument(
        "--publish",
        choices=["synthetic", "none"],
        default="synthetic",
        help="synthetic: publish a 720p stream stamped with capture times, and cards; none: the stream is live already",
    )
    parser.add_argument("--workers", type=int, default=None, help="viewer processes (default: CPUs available, max 4)")
    parser.add_argument("--probes", type=int, default=2, help="decoding probe viewers for latency (2)")
    parser.add_argument("--no-audio", action="store_true", help="viewers receive video only")
    parser.add_argument("--threshold", type=float, default=0.995, help="delivery every viewer must reach (0.995)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON")
    parser.add_argument("--plot", metavar="PNG", default=None, help="plot viewers, CPU and bitrate over time")
    parser.add_argument(
        "--against-reference", action="store_true", help="run the same levels against a plain aiortc relay too"
    )
    parser.add_argument(
        "--reference-viewers",
        default=None,
        help="levels for the reference relay (default: --viewers; it saturates far earlier)",
    )
    parser.add_argument(
        "--server-cpus", default=None, help="CPU list to pin the reference relay to (e.g. 0), like your server"
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="read server CPU/RSS from /proc for this pid (default: found by port for a local target, else /metrics)",
    )
    parser.add_argument(
        "--fps", type=float, default=30.0, help="the stream's frame rate; frames a viewer never got count as lost (30)"
    )
    parser.add_argument("--kbps", type=int, default=2500, help="rung bitrate the reference relay encodes (2500)")
    parser.add_argument(
        "--comment-rate",
        type=float,
        default=0.0,
        help="comments a second per commenting viewer, on its data channel (0: none; the server allows 1 per 3 s)",
    )
    parser.add_argument(
        "--like-rate", type=float, default=0.0, help="like taps a second per viewer, sent in 500 ms batches (0: none)"
    )
    parser.add_argument("--commenters", type=float, default=0.5, help="share of the viewers that comment (0.5)")
    parser.add_argument(
        "--likers",
        type=float,
        default=1.0,
        help="share of the viewers that tap like, spread evenly over commenters and the others (1.0: all)",
    )
    parser.add_argument(
        "--video-baseline",
        action="store_true",
        help="with --comment-rate/--like-rate: run each level with video alone first and report what the "
        "conversation costs in server CPU",
    )
