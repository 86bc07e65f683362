"""The ABR on a send-side estimate: stay with margin, down fast, up only after a confirmed probe."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.sessions.abr import PROBE_BACKOFF_MAX_S, AbrPolicy, RungRate

RUNGS = [RungRate("720p", 2500), RungRate("480p", 1000), RungRate("240p", 350)]
ACTUAL = {"720p": 2_200_000.0, "480p": 900_000.0, "240p": 300_000.0}


def policy() -> AbrPolicy:
    abr = AbrPolicy(RUNGS, start="480p")
    abr.set_actual(ACTUAL)
    return abr


def test_stays_while_the_estimate_holds_the_actual_rate_not_the_nominal_one() -> None:
    abr = policy()
    # 950 kbit/s is under 480p's nominal 1,000 but over what its encoder really produces.
    assert all(abr.on_estimate(950_000, 0.0, t / 10) is None for t in range(100))
    assert abr.current == "480p"


def test_down_at_once_to_the_rung_that_fits_on_a_falling_estimate_or_loss() -> None:
    abr = policy()
    assert abr.on_estimate(500_000, 0.0, 0.0) == "240p"
    abr = policy()
    assert abr.on_estimate(5_000_000, 0.15, 0.0) == "240p"  # loss alone
    abr = policy()
    assert abr.on_estimate(5_000_000, 0.0, 0.0, repairs_refused=True) == "240p"


def test_up_only_after_a_probe_confirms_the_higher_rung() -> None:
    abr = policy()
    for t in range(50):
        assert abr.on_estimate(10_000_000, 0.0, t * 0.1) is None  # a high estimate alone is not enough
    target = abr.probe_target(0.0, 5.0)
    assert target is not None and target[0] == "720p" and target[1] > ACTUAL["720p"]
    assert not abr.on_probe("720p", 1_500_000, 5.2)  # came back short
    assert abr.on_estimate(10_000_000, 0.0, 5.3) is None
    assert abr.on_probe("720p", 3_000_000, 15.0)
    assert abr.on_estimate(3_000_000, 0.0, 15.1) == "720p"


def test_never_probes_a_viewer_that_loses_packets_or_sits_at_the_top() -> None:
    abr = policy()
    assert abr.probe_target(0.05, 10.0) is None
    abr.on_probe("720p", 3_000_000, 10.0)
    abr.on_estimate(3_000_000, 0.0, 12.5)
    assert abr.current == "720p" and abr.probe_target(0.0, 100.0) is None


@given(st.lists(st.tuples(st.floats(0.01, 3.0), st.booleans()), min_size=1, max_size=40))
def test_failed_probes_back_off_and_are_never_closer_than_two_seconds(events: list[tuple[float, bool]]) -> None:
    abr = AbrPolicy(RUNGS, start="240p")
    abr.set_actual(ACTUAL)
    now = 0.0
    last_probe: float | None = None
    for gap, ok in events:
        now += gap
        target = abr.probe_target(0.0, now)
        if target is None:
            continue
        assert last_probe is None or now - last_probe >= 2.0 - 1e-9
        last_probe = now
        abr.on_probe(target[0], target[1] if ok else 0.0, now)
        assert abr._probe_backoff_s <= PROBE_BACKOFF_MAX_S
        abr.on_estimate(target[1] if ok else 350_000, 0.0, now)


def test_under_heavy_loss_it_aims_for_what_got_through_not_the_lagging_estimate() -> None:
    abr = AbrPolicy(RUNGS, start="720p")
    abr.set_actual(ACTUAL)
    assert abr.on_estimate(3_400_000, 0.7, 0.0) == "240p"  # 30 % of 3.4 Mbit/s fits only 240p


@pytest.mark.parametrize("probed", [False, True], ids=["estimate-near-sent", "estimate-lifted-by-a-probe"])
def test_a_capacity_drop_under_the_rung_is_acted_on_within_half_a_second(probed: bool) -> None:
    """720p on a link that falls from 50 to 0.6 Mbit/s (a tbf-like queue of 200 ms that drops
    beyond it), feedback every 50 ms: the estimator and the ABR together move straight to 240p
    soon enough for the keyframe to arrive within the issue's 1 s of frozen picture. Also when a
    probe 2 s earlier lifted the estimate to 4 Mbit/s: the estimate lags the drop, what arrives
    does not (seen in Chromium: a first step to 480p, which the link could not carry either)."""
    from relay.media.bwe import SendSideEstimator
    from tests.unit.test_bwe import Link

    actual = {"720p": 2_600_000.0, "480p": 1_050_000.0, "240p": 400_000.0}
    bwe = SendSideEstimator()
    abr = AbrPolicy(RUNGS, start="720p")
    abr.set_actual(actual)
    link = Link(50_000_000, queue_s=0.2)
    rung, number, now, decided = "720p", 0, 0.0, None
    next_frame, next_feedback = 0.0, 0.05
    probe_at, probe_bps, probe_sent = 8.0, 4_200_000, 0.0
    while now < 12.0 and decided is None:
        if now >= 10.0:
            link.bps = 600_000
        if now >= next_frame:
            count = max(1, round(actual[rung] / 8 / 30 / 1200))
            bwe.sent(number, count, count * 1200, now)
            for i in range(count):
                link.send(number + i, 1200, now)
            number += count
            next_frame += 1 / 30
        if probed and probe_at <= now < probe_at + 0.1:  # a 100 ms cluster, paced every 5 ms
            if not probe_sent:
                bwe.start_probe(9, probe_bps, now)
            due = int((probe_bps / 8 * (now - probe_at + 0.005) - probe_sent) // 1200)
            if due:
                bwe.sent(number, due, due * 1200, now, 9)
                for i in range(due):
                    link.send(number + i, 1200, now)
                number += due
                probe_sent += due * 1200
        if probed and 9.9 <= now < 9.901:
            assert bwe.estimate_bps is not None and bwe.estimate_bps > 3_500_000, bwe.estimate_bps
        if now >= next_feedback:
            feedback = link.feedback(now)
            if feedback is not None and bwe.on_feedback(feedback, now) is not None and bwe.estimate_bps:
                choice = abr.on_estimate(
                    bwe.estimate_bps, bwe.loss, now, congested=bwe.congested(now), delivered_bps=bwe.delivered_bps(),
                    acked_bps=bwe.acked_bps,
                )
                if choice is not None:
                    assert now >= 10.0, f"moved to {choice} on a clear link at {now:.2f} s"
                    decided = (choice, now - 10.0)
            next_feedback += 0.05
        now += 0.001
    assert decided is not None and decided[0] == "240p" and decided[1] <= 0.5, decided


def test_an_estimate_that_only_follows_a_quiet_encoder_is_no_reason_to_go_down() -> None:
    abr = policy()
    # No queue, no loss: the estimate is low because little was sent (a static scene).
    assert all(abr.on_estimate(400_000, 0.0, t / 10, congested=False) is None for t in range(50))
    assert abr.current == "480p"
    assert abr.on_estimate(400_000, 0.0, 5.0, congested=True) == "240p"  # the same estimate, congested


def test_a_rung_whose_encoder_is_quiet_for_a_while_is_not_taken_for_cheap() -> None:
    abr = AbrPolicy(RUNGS, start="480p")
    abr.set_actual({"720p": 500_000.0, "480p": 900_000.0, "240p": 300_000.0})  # 720p on a still scene
    target = abr.probe_target(0.0, 10.0)
    assert target is not None and target[0] == "720p" and target[1] >= 1.5 * 0.9 * 2_500_000
    assert not abr.on_probe("720p", 1_500_000, 10.1)  # a 1.5 Mbit/s link does not fit 720p's full rate


def test_a_confirmed_move_up_that_does_not_hold_backs_probing_off_like_a_failed_probe() -> None:
    abr = AbrPolicy(RUNGS, start="240p")
    abr.set_actual(ACTUAL)
    now, gaps = 10.0, []
    for _ in range(4):  # a shaper's bucket fools each probe; the link cannot carry 480p
        target = abr.probe_target(0.0, now)
        while target is None:
            now += 0.1
            target = abr.probe_target(0.0, now)
        gaps.append(now)
        assert abr.on_probe(target[0], target[1], now)
        assert abr.on_estimate(2_000_000, 0.0, now + 0.1) == "480p"
        now += 1.5
        assert abr.on_estimate(600_000, 0.3, now) == "240p"  # loss: the move up is undone
    waits = [round(b - a, 3) for a, b in pairwise(gaps)]
    assert waits == sorted(waits) and waits[-1] >= PROBE_BACKOFF_MAX_S  # longer each time


def test_one_dip_of_the_estimate_is_no_reason_to_leave_a_rung_the_link_carries() -> None:
    """Seen in Chromium on 1.5 Mbit/s: a keyframe's burst builds a queue for a moment, the
    estimate falls to 85 % of what arrives, then climbs back from just under 480p's stay margin.
    The decrease counts as congestion only briefly (``congested``), shorter than a dip must
    last to move the viewer, so the dip alone never does; a second decrease soon after does."""
    from relay.media.bwe import SendSideEstimator

    actual = {"720p": 2_600_000.0, "480p": 1_134_000.0, "240p": 400_000.0}
    abr = AbrPolicy(RUNGS, start="480p")
    abr.set_actual(actual)
    bwe = SendSideEstimator()
    bwe._last_decrease = 10.0  # the blip's decrease; the signal is back to normal, no loss
    for step in range(60):  # 3 s of feedback, the estimate just under the stay margin
        now = 10.0 + step * 0.05
        assert abr.on_estimate(1_150_000, 0.0, now, congested=bwe.congested(now)) is None, now
    assert abr.current == "480p"
    decided = None
    for step in range(60):  # a queue that keeps building: decreases every 200 ms
        now = 20.0 + step * 0.05
        if step % 4 == 0:
            bwe._last_decrease = now
        decided = decided or abr.on_estimate(1_150_000, 0.0, now, congested=bwe.congested(now))
    assert decided == "240p"


def test_an_estimate_bouncing_under_the_rung_while_everything_arrives_is_a_noisy_clock_not_a_queue() -> None:
    """Seen in Chromium on a busy machine: 480p on 1.5 Mbit/s, no loss, overuse signals every
    few hundred ms from the receiver's bursty timestamps, the estimate bouncing between 85 % of
    what arrives and what arrives, itself just under the rung's stay margin. That viewer stays;
    one whose estimate stays under what arrives (a queue that keeps building) goes down."""
    actual = {"720p": 2_600_000.0, "480p": 1_134_000.0, "240p": 400_000.0}
    abr = AbrPolicy(RUNGS, start="480p")
    abr.set_actual(actual)
    acked = 1_100_000.0
    for step in range(200):  # 10 s
        now = step * 0.05
        estimate = 0.85 * acked if step % 4 == 0 else acked
        assert abr.on_estimate(estimate, 0.0, now, congested=True, acked_bps=acked) is None, now
    decided = None
    for step in range(40):
        now = 20.0 + step * 0.05
        decided = decided or abr.on_estimate(0.85 * acked, 0.0, now, congested=True, acked_bps=acked)
    assert decided == "240p"
