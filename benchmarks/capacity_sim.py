"""The capacity plan, simulated: every node of the planned tree as a one-core queue, fed frame by frame.

Run: ``python -m benchmarks.capacity_sim [--viewers 10000,100000,3000000] [--seconds 20]``

``benchmarks.capacity`` sizes the tree from averages and a tail bound; this checks the sizes
with what they leave out:

- **The real spread.** Every puller (an edge, or a relay of the level below) chooses its relay
  with the server's own ``relay.cluster.nodes.pick_relay`` over the planned nodes' names, so a
  relay carries the pulls the hash gives it, not the average.
- **Frames, not rates.** The origin emits one frame set every 1/30 s: each rung's frame (a
  keyframe every ``GOP_FRAMES``, ``KEYFRAME_RATIO`` times a delta frame's packets) and the audio
  of that interval. A node spends the measured cost of each packet it receives, forwards to a
  pull and sends to a viewer (``benchmarks.capacity``'s per-second costs divided by the packets
  per second they were measured at), one frame set after another, FIFO on one core: its finish
  time for frame k is ``max(arrival_k, finish_{k-1}) + work_k`` (exact for a one-server FIFO
  queue, so a keyframe's burst delays the frames behind it as it would on the server). Its pulls
  get the frame set when it has finished it, ``LINK_S`` later.
- **A relay dying.** At ``fail_at_s`` the busiest relay of every level stops. Its pullers see
  nothing for ``REPULL_S`` (the directory's ``dead_after_s`` and a new pull's setup), then pull
  from the relay ``pick_relay`` gives them without it, as the server does.

Reported per plan: each level's busiest node (cores) before and after the failure, and the
delay from the origin's frame to the last viewer of a leaf being sent it (p50/p99/max), a
bound on what the tree adds to glass-to-glass latency. Not modelled: joins (their DTLS and
keyframe requests), the kernel's send time beyond what the per-viewer cost measured, and links
that drop or queue.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from benchmarks import capacity
from relay.cluster.nodes import NodeLoad, pick_relay

FPS = 30
GOP_FRAMES = 60  # the default gop_s (2 s) at 30 fps
KEYFRAME_RATIO = 6.0  # a keyframe's packets against a delta frame's
VIDEO_PPS = {"720p": 260.0, "480p": 123.0, "240p": 74.0}  # with the audio, the 507 packets/s a pull measured
AUDIO_PPS = 50.0
PULL_PPS = sum(VIDEO_PPS.values()) + AUDIO_PPS  # a pull carries every rung and the audio
VIEWER_PACKET_S = capacity.VIEWER_CORES / (VIDEO_PPS["480p"] + AUDIO_PPS)  # measured on 480p with audio
PULL_PACKET_S = capacity.PULL_CORES / PULL_PPS  # forwarding one pulled packet
PULLED_PACKET_S = capacity.EDGE_BASE_CORES / PULL_PPS  # receiving one (an edge's or relay's own pull)
ENCODE_S = capacity.ORIGIN_ENCODE_CORES / FPS  # the ladder's encoders, per frame set
LINK_S = 0.001  # one hop between nodes
REPULL_S = 5.5  # dead_after_s (5 s), then a new pull's setup
DEAD_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # "origin", "relay 1", ..., "edges"
    busiest_cores: float  # steady state, the busiest node's share of its core
    busiest_after_failure: float
    nodes: int


@dataclass(frozen=True, slots=True)
class Result:
    viewers: int
    plan: capacity.Plan
    seconds: float
    levels: tuple[Level, ...]
    delay_ms: tuple[float, float, float]  # p50, p99, max: origin's frame -> a leaf's last viewer
    delay_after_failure_ms: tuple[float, float, float]  # leaves that never lost their source
    frozen_s: float  # the longest a leaf had no frames (its source, or one above it, died)
    worst_pulls: int  # the most pulls the hash put on one relay (the plan allows pulls_per_node)


def packets(frame: int) -> tuple[dict[str, float], float]:
    """Each rung's video packets in frame set ``frame``, and the audio's."""
    key = frame % GOP_FRAMES == 0
    scale = KEYFRAME_RATIO if key else 1.0
    per_gop = GOP_FRAMES - 1 + KEYFRAME_RATIO  # delta-frame units per GOP
    video = {r: pps / FPS * GOP_FRAMES / per_gop * scale for r, pps in VIDEO_PPS.items()}
    return video, AUDIO_PPS / FPS


def assign(pullers: list[NodeLoad], relays: list[NodeLoad], level: int | None, dead: set[str]) -> np.ndarray:
    """Each puller's relay (an index into ``relays``), as ``pick_relay`` chooses it."""
    live = [r for r in relays if r.node_id not in dead]
    index = {r.node_id: i for i, r in enumerate(relays)}
    out = np.empty(len(pullers), dtype=np.int64)
    for i, puller in enumerate(pullers):
        chosen = pick_relay("live", puller.node_id, live, 100.0, DEAD_AFTER_S, below=level)
        assert chosen is not None
        out[i] = index[chosen.node_id]
    return out


def simulate(viewers: int, seconds: float = 20.0, fail_at_s: float | None = None) -> Result:
    plan = capacity.plan(viewers)
    fail_at_s = seconds / 3 if fail_at_s is None else fail_at_s  # whole GOPs, at least two before it
    rung = plan.rung
    # The tree: level 0 the origin, then the relay levels, then the leaf edges; each node's
    # parent is its index in the level above (every level-1 relay pulls from the origin).
    tiers: list[list[NodeLoad]] = [[NodeLoad("origin", "origin", "http://origin", 100.0)]]
    for n, count in enumerate(plan.relay_levels, start=1):
        tiers.append([NodeLoad(f"relay{n}-{i}", "relay", f"http://r{n}-{i}", 100.0, level=n) for i in range(count)])
    tiers.append([NodeLoad(f"edge-{i}", "edge", f"http://e{i}", 100.0) for i in range(plan.leaves)])
    depth = len(tiers)
    below = [None, *range(1, depth - 1), None]  # what each tier's pullers pass as pick_relay's below=
    # The busiest relay of each level fails (the origin and the leaves do not).
    parents_before: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    for t in range(1, depth):
        if t == 1:
            parents_before.append(np.zeros(len(tiers[1]), dtype=np.int64))
        else:
            parents_before.append(assign(tiers[t], tiers[t - 1], below[t], set()))
    dead: set[str] = set()
    for t in range(1, depth - 1):
        pulls = np.bincount(parents_before[t + 1], minlength=len(tiers[t]))
        dead.add(tiers[t][int(np.argmax(pulls))].node_id)
    parents_after: list[np.ndarray] = [parents_before[0], parents_before[1]]
    for t in range(2, depth):
        parents_after.append(assign(tiers[t], tiers[t - 1], below[t], dead))
    worst_pulls = max(int(np.bincount(parents_before[t]).max()) for t in range(2, depth))
    alive = [np.array([n.node_id not in dead for n in tier]) for tier in tiers]
    # Leaf viewers: per_edge each, the last edge what is left.
    leaf_viewers = np.full(plan.leaves, plan.per_edge, dtype=np.float64)
    leaf_viewers[-1] = viewers - plan.per_edge * (plan.leaves - 1)

    # Whole GOPs in each window that is averaged (a window with an extra keyframe reads high); the
    # first GOP is a warm-up (every queue starts empty, on a keyframe).
    frames = int(seconds * FPS)
    fail_frame = max(2, int(fail_at_s * FPS) // GOP_FRAMES) * GOP_FRAMES
    back_frame = fail_frame + math.ceil(REPULL_S * FPS)
    end_frame = back_frame + (frames - back_frame) // GOP_FRAMES * GOP_FRAMES
    if end_frame <= back_frame:
        raise ValueError(f"{seconds} s is too short: the failure at {fail_frame / FPS:g} s needs a GOP after recovery")
    finish = [np.zeros(len(tier)) for tier in tiers]
    busy_before = [np.zeros(len(tier)) for tier in tiers]
    busy_after = [np.zeros(len(tier)) for tier in tiers]
    delays: list[np.ndarray] = []
    delays_after: list[np.ndarray] = []
    last_frame = np.zeros(plan.leaves)  # when each leaf last had a frame
    frozen = 0.0
    for k in range(frames):
        now = k / FPS
        video, audio = packets(k)
        pulled = sum(video.values()) + audio
        failed = k >= fail_frame
        parents = parents_after if k >= back_frame else parents_before
        busy = busy_before if GOP_FRAMES <= k < fail_frame else busy_after if back_frame <= k < end_frame else None
        arrival, fed = np.array([now]), np.array([True])  # the origin has frame k at its time
        for t in range(depth):
            if t > 0:
                arrival, fed = finish[t - 1][parents[t]] + LINK_S, fed[parents[t]]  # what its source sent
            if failed:
                fed = fed & alive[t]
            if t < depth - 1:  # it feeds the tier below: the pulls of its live pullers
                weights = alive[t + 1].astype(np.float64) if failed else None
                pulls = np.bincount(parents[t + 1], weights=weights, minlength=len(tiers[t]))
                work = pulls * pulled * PULL_PACKET_S + (ENCODE_S if t == 0 else pulled * PULLED_PACKET_S)
            else:
                work = pulled * PULLED_PACKET_S + leaf_viewers * (video[rung] + audio) * VIEWER_PACKET_S
            work = np.where(fed, work, 0.0)
            finish[t] = np.where(fed, np.maximum(arrival, finish[t]) + work, finish[t])
            if busy is not None:
                busy[t] += work
        delay = finish[-1] - now
        if GOP_FRAMES <= k < fail_frame:
            delays.append(delay)
        elif k >= back_frame:
            delays_after.append(delay[fed])
        frozen = max(frozen, float(np.where(fed, now - last_frame, 0.0).max()))
        last_frame = np.where(fed, now, last_frame)

    def cores(busy: np.ndarray, span: float) -> float:
        return float(busy.max()) / span if len(busy) else 0.0

    names = ["origin", *(f"relay {n}" for n in range(1, depth - 1)), "edges"]
    levels = tuple(
        Level(
            names[t],
            cores(busy_before[t], (fail_frame - GOP_FRAMES) / FPS),
            cores(busy_after[t], (end_frame - back_frame) / FPS),
            len(tiers[t]),
        )
        for t in range(depth)
    )

    def spread(samples: list[np.ndarray]) -> tuple[float, float, float]:
        values = np.concatenate(samples) * 1000
        return (float(np.percentile(values, 50)), float(np.percentile(values, 99)), float(values.max()))

    return Result(viewers, plan, seconds, levels, spread(delays), spread(delays_after), frozen, worst_pulls)


def report(result: Result) -> str:
    p50, p99, top = result.delay_ms
    a50, a99, atop = result.delay_after_failure_ms
    lines = [
        f"{result.viewers:,} viewers ({result.plan.rung}), {sum(lv.nodes for lv in result.levels):,} nodes, "
        f"{result.seconds:g} s of frames; the hash put at most {result.worst_pulls} pulls on a relay "
        f"(the plan allows {capacity.pulls_per_node(origin=False)})",
        "  busiest node per level (cores), before / after the busiest relay of every level died: "
        + ", ".join(
            f"{lv.name} ({lv.nodes}) {lv.busiest_cores:.2f} / {lv.busiest_after_failure:.2f}" for lv in result.levels
        ),
        f"  origin's frame -> a leaf's last viewer: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {top:.0f} ms; "
        f"after the failure p50 {a50:.0f}, p99 {a99:.0f}, max {atop:.0f} ms; longest a leaf went without frames "
        f"{result.frozen_s:.1f} s",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default=",".join(map(str, capacity.PLANNED)))
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    for count in (int(v) for v in args.viewers.split(",")):
        print(report(simulate(count, args.seconds)))


if __name__ == "__main__":
    main()
