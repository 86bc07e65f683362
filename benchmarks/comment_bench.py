"""How many comments one core accepts and filters: the pure path every comment takes
(``CommentPolicy.check``: normalisation, length, word filter, duplicates, per-viewer and
per-stream limits), alone and with the display's priority and sampler after it. No sockets:
this is the ceiling the chat can reach on one core, whatever the transport costs on top.

    python -m benchmarks.comment_bench [--comments 200000] [--viewers 50000]

Time is simulated (``now`` advances 1/rate per comment), so the limits act as they would at that
rate; the per-stream limit is lifted to measure acceptance (a stream set to refuse most comments
is also timed: refusing is the cheap case). CPU time is the process's own (one thread).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from typing import Any

from relay.identity import Identity
from relay.talk.comments import CommentPolicy, CommentRefused, CommentRules
from relay.talk.display import DisplaySampler, priority

WORDS = (*(f"badword{i}" for i in range(40)), "scam", "fake", "spam")
PHRASES = (
    "is this in stock?", "love it", "what size is the model wearing", "how much is shipping to Lyon",
    "does the scarf come in blue?", "wow", "just ordered two!", "is it real silk or a blend?",
    "can you show the back again", "what's the return policy", "hello from Jakarta", "price please",
)  # fmt: skip
TITLES = ["Silk scarf", "Stoneware mug"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"{rng.choice(PHRASES)} #{i}"
        if rng.random() < 0.05:
            text += f" {rng.choice(WORDS)}"  # 5 % carry a filtered word
        if rng.random() < 0.2:
            text = text + " " + " ".join(rng.choice(PHRASES) for _ in range(rng.randint(1, 6)))
        out.append(text[:200])
    return out


def run_policy(texts: list[str], viewers: int, rate: float, *, display: bool, per_stream: float) -> dict[str, Any]:
    policy = CommentPolicy(CommentRules(words=WORDS, per_stream_per_s=per_stream))
    sampler = DisplaySampler(10)
    people = [Identity(f"u-{i}", f"Viewer {i}") for i in range(viewers)]
    accepted = refused = shown = 0
    step = 1.0 / rate
    tick = max(1, round(rate * 0.1))  # the feed's ticker runs every 100 ms
    now = 1_000_000.0
    cpu0 = time.process_time()
    for n, text in enumerate(texts):
        now += step
        try:
            comment = policy.check(people[n % viewers], text, now=now, pts_ms=n)
        except CommentRefused:
            refused += 1
            continue
        accepted += 1
        if display:
            sampler.offer(comment, priority(comment, TITLES))
            if n % tick == 0:
                shown += len(sampler.due(now))
    cpu = time.process_time() - cpu0
    return {
        "comments": len(texts),
        "accepted": accepted,
        "refused": refused,
        "shown": shown,
        "cpu_s": cpu,
        "comments_per_cpu_s": len(texts) / cpu if cpu else None,
        "accepted_per_cpu_s": accepted / cpu if cpu else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.comment_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=200_000)
    parser.add_argument("--viewers", type=int, default=50_000, help="distinct authors (50000)")
    parser.add_argument("--rate", type=float, default=10_000.0, help="simulated arrival rate, comments/s (10000)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    texts = _texts(args.comments, 1)
    results = {
        "policy": run_policy(texts, args.viewers, args.rate, display=False, per_stream=1e9),
        "policy+display": run_policy(texts, args.viewers, args.rate, display=True, per_stream=1e9),
        "policy, stream limit 50/s": run_policy(texts, args.viewers, args.rate, display=False, per_stream=50.0),
    }
    for name, r in results.items():
        print(
            f"{name:28} {r['comments_per_cpu_s']:>10,.0f} comments/s per core  "
            f"({r['accepted']:,} accepted, {r['refused']:,} refused, {r['cpu_s']:.2f} s CPU)"
        )
    if args.json:
        report = {"results": results, "args": vars(args), "python": platform.python_version()}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
