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
  pulls. A **relay** (``--role relay --relay-level n``: a node that the level below pulls from)
  spends its core on pulls too.
- **Pulls are spread by rendezvous hashing** (``relay.cluster.nodes.pick_relay``), not dealt out
  evenly: with n pullers over m relays a relay gets Binomial(n, 1/m) of them, and the busiest
  one, not the average, must fit its core. A level is therefore sized so that the chance that
  any of its relays gets more pulls than a core feeds is under ``RISK`` (a Poisson tail, which
  is a little wider than the binomial's). The origin is not hashed to: every level-1 relay
  pulls from it.

The README's capacity table is this module's output (a test compares them), and
``benchmarks.capacity_sim`` runs the plans through a simulation of every node's queue, with the
real hash choosing each puller's relay.
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
RISK = 0.01  # the chance, per level, that hashing gives some relay more pulls than its core feeds


def busiest(pullers: int, relays: int) -> int:
    """Pulls on the busiest of ``relays`` hashed to by ``pullers``, but for a ``RISK`` chance: the
    smallest k with relays * P(X > k) <= RISK, X ~ Poisson(pullers / relays). The tail is summed
    from far above the mean down (in logs: a large mean underflows exp(-mean))."""
    mean = pullers / relays

    def pmf(i: int) -> float:
        return math.exp(-mean + i * math.log(mean) - math.lgamma(i + 1))

    k = math.ceil(mean + 12 * math.sqrt(mean) + 12)  # the tail above this is far below RISK
    tail = 0.0  # P(X > k)
    while k > math.ceil(mean) and relays * (tail + pmf(k)) <= RISK:
        tail += pmf(k)
        k -= 1
    return min(k, pullers)


MIN_RELAYS = 2  # per level: when one dies, its pullers move to a sibling, not up to a level that is full


def relays_for(pullers: int) -> int:
    """The fewest relays (at least ``MIN_RELAYS``) over which hashing ``pullers`` leaves every
    relay within its budget."""
    cap = pulls_per_node(origin=False)
    lo, hi = max(MIN_RELAYS, math.ceil(pullers / cap)), max(MIN_RELAYS, pullers)  # busiest(n, n) fits
    while lo < hi:
        mid = (lo + hi) // 2
        if busiest(pullers, mid) <= cap:
            hi = mid
        else:
            lo = mid + 1
    return lo


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
        below = relays_for(below)
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
        assert busiest(children, parents) <= pulls_per_node(origin=False)
    assert tiers[1] <= p.origin_pulls if p.relay_levels else p.origin_pulls == p.leaves


def table(counts: list[int]) -> str:
    rows = [
        "| viewers (720p) | leaf edges (cores) | relay levels (relays per level) | pulls on the origin "
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
