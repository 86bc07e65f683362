"""The retransmission budget: never over its rate over any window, no resend within a round trip."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.media.repair import MAX_AGE_S, RepairBudget

requests = st.lists(
    st.tuples(st.floats(0, 0.05), st.integers(0, 300), st.integers(100, 1300), st.floats(0, 1.5)), max_size=300
)


@given(st.floats(10_000, 5_000_000), requests)
def test_the_budget_is_never_exceeded_over_any_window(
    estimate: float, reqs: list[tuple[float, int, int, float]]
) -> None:
    budget = RepairBudget(0, 0.0)
    budget.set_rate(estimate, 0.0)
    now = 0.0
    allowed: list[tuple[float, int]] = []
    for gap, seq, size, age in reqs:
        now += gap
        if budget.allow(seq, size, age, now):
            allowed.append((now, size))
            assert age <= MAX_AGE_S
    for i, (start, _) in enumerate(allowed):
        total = 0
        for at, size in allowed[i:]:
            total += size
            assert total <= budget.rate_bps / 8 * (at - start) + budget.burst + 1e-6
    assert budget.sent == len(allowed)
    assert budget.sent + budget.refused == len(reqs)


@given(st.lists(st.tuples(st.floats(0, 0.2), st.integers(0, 20)), max_size=200))
def test_no_packet_is_resent_twice_within_a_round_trip(reqs: list[tuple[float, int]]) -> None:
    budget = RepairBudget(0, 0.0)
    budget.set_rate(1e9, 0.0)
    budget.rtt_s = 0.1
    now = 0.0
    last: dict[int, float] = {}
    for gap, seq in reqs:
        now += gap
        if budget.allow(seq, 100, 0.0, now):
            assert seq not in last or now - last[seq] >= 0.1
            last[seq] = now


def test_refusals_are_counted_by_cause() -> None:
    budget = RepairBudget(0, 0.0)
    budget.set_rate(100_000, 0.0)  # 15 kbit/s for repairs: a 2,400-byte bucket
    assert budget.allow(1, 1200, 0.1, 0.0) and budget.allow(2, 1200, 0.1, 0.0)
    assert not budget.allow(3, 1200, 0.1, 0.0)
    assert not budget.allow(1, 1200, 0.1, 0.01)
    assert not budget.allow(4, 1200, 2.0, 5.0)
    assert (budget.refused_budget, budget.refused_recent, budget.refused_age) == (1, 1, 1)
