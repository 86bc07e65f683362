"""The capacity plan through the simulation (benchmarks/capacity_sim.py): with the server's own
hash choosing every puller's relay and frames queued on one core per node, no node of a planned
tree exceeds its budget, the busiest relay of each level can die without overloading the rest,
and the delay the tree adds stays bounded. The even split the plan once assumed fails it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import capacity, capacity_sim


@given(st.integers(1, 200_000), st.integers(2, 5_000))
def test_a_level_sized_for_the_hash_fits_its_busiest_relay(pullers: int, relays: int) -> None:
    assert capacity.busiest(pullers, relays) >= math.ceil(pullers / relays)
    need = capacity.relays_for(pullers)
    assert need >= max(capacity.MIN_RELAYS, math.ceil(pullers / capacity.pulls_per_node(origin=False)))
    assert capacity.busiest(pullers, need) <= capacity.pulls_per_node(origin=False)


@pytest.mark.parametrize("viewers", capacity.PLANNED)
def test_the_planned_trees_hold_frame_by_frame_with_the_real_hash(viewers: int) -> None:
    result = capacity_sim.simulate(viewers, seconds=14)
    print(capacity_sim.report(result))
    assert result.worst_pulls <= capacity.pulls_per_node(origin=False)
    for level in result.levels:
        assert level.busiest_cores <= capacity.LOAD + 0.01, level  # within the plan's 80 %
        assert level.busiest_after_failure < 1.0, level  # one core still keeps up
    assert result.delay_ms[1] < 500 and result.delay_after_failure_ms[1] < 500, result
    assert result.frozen_s <= capacity_sim.REPULL_S + 2 / capacity_sim.FPS  # only while the pullers moved


def test_an_even_split_of_the_pulls_is_not_what_the_hash_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan before it knew the hash: as many relays as an even split needs. The simulation
    finds a relay over its budget."""
    monkeypatch.setattr(capacity, "relays_for", lambda n: math.ceil(n / capacity.pulls_per_node(origin=False)))
    result = capacity_sim.simulate(100_000, seconds=12)
    assert result.worst_pulls > capacity.pulls_per_node(origin=False)
    assert max(level.busiest_cores for level in result.levels) > capacity.LOAD + 0.05
