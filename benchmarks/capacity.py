"""The capacity plan: how many edges, relay levels and how much bandwidth one session needs.

Run: ``python -m benchmarks.capacity [--viewers 10000,100000,3000000]``

A model fed with the costs measured on the development machine (``benchmarks/RESULTS.md``,
"Origins and edges"), not a simulation of packets: each node gets a budget of one core at
``LOAD`` of its capacity, and the plan is the smallest tree in which no node exceeds it.

- A **leaf edge** (one process, one core) serves viewers: ``EDGE_BASE_CORES`` for its pull plus
  ``VIEWER_CORES`` per viewer (480p with audio, marginal, measured); at 720p a viewer is sent
  ``720p/480p`` times the packets, so it costs that much more.
- A **pull** costs the node it pulls from ``PULL_CORES`` (the upper of two runs) and carries the
  whole ladder, ``PULL_MBPS``.
- The **origin** spends ``ORIGIN_ENCODE_CORES`` on the ladder; what is left of its core feeds
  pulls. A **relay edge** (an edge that other edges pull from: a relay level) spends its core on
  pulls too. One relay level is built (``--role relay``); a plan with two needs what is not.

The README's capacity table is this module's output (a test compares them).
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

LOAD = 0.8  # plan each core to 80 % of its capacity
VIEWER_CORES = 0.0014  # a 480p viewer on an edge (edge_cost: 0.206-0.219 cores for 149 viewers)
EDGE_BASE_CORES = 0.07  # an edge's own pull of every rung and the audio
PULL_CORES = 0.025  # what one pull costs the node it pulls from
PULL_MBPS = 4.3  # one pull: the default ladder and the audio, with RTP overhead
ORIGIN_ENCODE_CORES = 0.33  # the default ladder's encoders (pull_cost idle, the upper run)
VIEWER_MBPS = {"480p": 1.14, "720p": 2.8}  # per viewer, with audio and overhead (bench; 720p from the ladder)
PACKETS_VS_480P = {"480p": 1.0, "720p": 1.8}  # 720p: ~260 video + 50 audio packets/s, 480p: 173 measured


@dataclass(frozen=True, slots=True)
class Plan:
    viewers: int
    rung: str
    per_edge: int  # viewers per leaf edge (one core)
    leaves: int
    relay_levels: tuple[int, ...]  # relay edges per level, nearest the origin first
    origin_pulls: int
    egress_gbps: float  # leaf edges to viewers, all together
    origin_mbps: float  # what the origin sends its pulls

    @property
    def cores(self) -> int:
        return 1 + self.leaves + sum(self.relay_levels)


def viewers_per_edge(rung: str) -> int:
    return int((LOAD - EDGE_BASE_CORES) / (VIEWER_CORES * PACKETS_VS_480P[rung]))


def pulls_per_node(origin: bool) -> int:
    spare = LOAD - (ORIGIN_ENCODE_CORES if origin else EDGE_BASE_CORES)
    return int(spare / PULL_CORES)


def plan(viewers: int, rung: str = "720p") -> Plan:
    per_edge = viewers_per_edge(rung)
    leaves = math.ceil(viewers / per_edge)
    levels: list[int] = []
    below = leaves  # nodes that need a pull at the level being planned
    while below > pulls_per_node(origin=True):
        below = math.ceil(below / pulls_per_node(origin=False))
        levels.insert(0, below)
    return Plan(
        viewers,
        rung,
        per_edge,
        leaves,
        tuple(levels),
        below,
        viewers * VIEWER_MBPS[rung] / 1000,
        below * PULL_MBPS,
    )


def check(p: Plan) -> None:
    """Every node within its budget and every viewer served (raises AssertionError otherwise)."""
    assert p.leaves * p.per_edge >= p.viewers
    assert EDGE_BASE_CORES + p.per_edge * VIEWER_CORES * PACKETS_VS_480P[p.rung] <= LOAD + 1e-9
    assert ORIGIN_ENCODE_CORES + p.origin_pulls * PULL_CORES <= LOAD + 1e-9
    tiers = [p.origin_pulls, *p.relay_levels, p.leaves]
    for parents, children in itertools.pairwise(tiers[1:]):
        assert math.ceil(children / parents) <= pulls_per_node(origin=False)
    assert tiers[1] <= p.origin_pulls if p.relay_levels else p.origin_pulls == p.leaves


def table(counts: list[int]) -> str:
    rows = [
        "| viewers (720p) | leaf edges (cores) | relay levels (edges per level) | pulls on the origin "
        "| origin to its pulls | each relay level to the next | edges to viewers |",
        "|---|---|---|---|---|---|---|",
    ]
    for count in counts:
        p = plan(count)
        check(p)
        relays = "none" if not p.relay_levels else f"{len(p.relay_levels)} ({', '.join(map(str, p.relay_levels))})"
        below = [*p.relay_levels[1:], p.leaves]  # the nodes each relay level feeds
        onward = ", ".join(f"{n * PULL_MBPS / 1000:,.1f} Gbit/s" for n in below) if p.relay_levels else "-"
        rows.append(
            f"| {count:,} | {p.leaves:,} x {p.per_edge} viewers | {relays} | {p.origin_pulls} "
            f"| {p.origin_mbps:,.0f} Mbit/s | {onward} | {p.egress_gbps:,.0f} Gbit/s |"
        )
    return "\n".join(rows) + "\n"


PLANNED = [10_000, 100_000, 3_000_000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default=",".join(map(str, PLANNED)))
    args = parser.parse_args()
    print(table([int(v) for v in args.viewers.split(",")]), end="")


if __name__ == "__main__":
    main()
