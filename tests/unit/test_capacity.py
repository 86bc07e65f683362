"""The capacity plan (benchmarks/capacity.py): every plan serves every viewer with no node over
its budget, and the README's table is the model's output."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.capacity import PLANNED, check, plan, pulls_per_node, table, viewers_per_edge

README = Path(__file__).resolve().parents[2] / "README.md"


@given(st.integers(1, 50_000_000), st.sampled_from(["480p", "720p"]))
def test_every_plan_serves_everyone_within_every_nodes_budget(viewers: int, rung: str) -> None:
    p = plan(viewers, rung)
    check(p)
    assert (p.leaves - 1) * p.per_edge < viewers  # and no leaf more than needed


def test_relay_levels_appear_only_past_what_the_origin_feeds() -> None:
    direct = pulls_per_node(origin=True) * viewers_per_edge("720p")
    assert plan(direct).relay_levels == ()
    assert len(plan(direct + 1).relay_levels) == 1


def test_the_readme_capacity_table_is_the_models() -> None:
    assert table(PLANNED) in README.read_text(), "regenerate it: python -m benchmarks.capacity"
