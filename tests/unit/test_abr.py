from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from relay.sessions.abr import AbrPolicy, RungRate

LADDER = [RungRate("720p", 2500), RungRate("480p", 1000), RungRate("240p", 350)]


def _feed_remb(
    policy: AbrPolicy, bps: float, start: float, seconds: float, step: float = 0.25
) -> list[tuple[float, str]]:
    changes = []
    t = start
    while t < start + seconds:
        new = policy.on_remb(bps, t)
        if new is not None:
            changes.append((t, new))
        t += step
    return changes


def test_starts_on_the_middle_rung_unless_told() -> None:
    assert AbrPolicy(LADDER).current == "480p"
    assert AbrPolicy(LADDER, start="240p").current == "240p"
    assert AbrPolicy(LADDER, start="nope").current == "480p"


def test_400_kbit_moves_straight_to_240p_at_once() -> None:
    policy = AbrPolicy(LADDER, start="720p")
    changes = _feed_remb(policy, 400_000, 0.0, 5.0)
    assert changes[0] == (0.0, "240p")
    assert policy.current == "240p"


def test_moves_up_one_rung_at_a_time_after_hold() -> None:
    policy = AbrPolicy(LADDER, start="240p", up_hold_s=6.0)
    changes = _feed_remb(policy, 10_000_000, 0.0, 20.0)
    assert [name for _, name in changes] == ["480p", "720p"]
    assert 6.0 <= changes[0][0] < 7.0
    assert changes[1][0] - changes[0][0] >= 6.0


def test_no_up_without_headroom() -> None:
    policy = AbrPolicy(LADDER, start="480p")
    # 3 Mbit/s fits 720p (2.5) but not with 30 % headroom: stay.
    assert _feed_remb(policy, 3_000_000, 0.0, 30.0) == []


def test_loss_over_5_percent_moves_down_one_rung() -> None:
    policy = AbrPolicy(LADDER, start="720p")
    changes = [policy.on_loss(0.12, t / 4) for t in range(8)]
    assert "480p" in changes
    assert policy.current in ("480p", "240p")


def test_short_dip_in_the_window_counts_then_expires() -> None:
    policy = AbrPolicy(LADDER, start="480p", remb_window_s=1.5)
    assert policy.on_remb(600_000, 0.0) == "240p"
    assert policy.estimate_bps(1.0) == 600_000
    assert policy.estimate_bps(2.0) is None


@given(st.lists(st.tuples(st.floats(0.01, 1.0), st.floats(50_000, 20_000_000), st.floats(0, 0.3)), max_size=120))
def test_never_flaps_faster_than_the_hold_times(steps: list[tuple[float, float, float]]) -> None:
    policy = AbrPolicy(LADDER, start="480p", up_hold_s=6.0, down_hold_s=1.0)
    t = 0.0
    changes: list[tuple[float, str]] = []
    order = {"720p": 0, "480p": 1, "240p": 2}
    last = policy.current
    for dt, bps, loss in steps:
        t += dt
        for new in (policy.on_remb(bps, t), policy.on_loss(loss, t)):
            if new is not None:
                changes.append((t, new))
                assert new != last
                last = new
    for (t1, a), (t2, b) in pairwise(changes):
        assert t2 - t1 >= 1.0 - 1e-9
        if order[b] < order[a]:  # an up-switch needs the long hold
            assert t2 - t1 >= 6.0 - 1e-9
