"""The bench's conversation schedule: the rates it promises, taps batched and never lost."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.talkload import LIKE_BATCH_S, MAX_BATCH, TalkSchedule, likes


@given(
    st.floats(0, 2), st.floats(0, 30), st.floats(0, 0.999), st.lists(st.floats(0.01, 1.0), min_size=1, max_size=200)
)
def test_comments_and_taps_follow_their_rates_and_batches_lose_no_tap(
    comment_rate: float, like_rate: float, phase: float, steps: list[float]
) -> None:
    schedule = TalkSchedule(comment_rate, like_rate, start=100.0, phase=phase)
    now, comments, taps, batches = 100.0, 0, 0, []
    for step in steps:
        now += step
        c, t = schedule.due(now)
        comments, taps = comments + c, taps + t
        if t:
            batches.append(now)
            assert t <= MAX_BATCH
    elapsed = now - 100.0
    assert comments == int(elapsed * comment_rate + phase) if comment_rate else comments == 0
    assert all(b - a >= LIKE_BATCH_S for a, b in itertools.pairwise(batches))
    # Every tap made is sent or waits for the next batch; none is counted twice.
    assert taps == schedule.sent_taps <= schedule.taps
    since_batch = now - (batches[-1] if batches else 100.0)
    assert schedule.taps - schedule.sent_taps <= like_rate * since_batch + 1
    if schedule.taps > schedule.sent_taps and since_batch >= LIKE_BATCH_S:
        raise AssertionError("taps were due for a batch but not sent")


@given(st.integers(1, 2000), st.floats(0, 1))
def test_the_likers_are_the_share_asked_for_among_commenters_and_the_others(n: int, share: float) -> None:
    chosen = [i for i in range(n) if likes(i, share)]
    assert len(chosen) == math.floor(n * share)
    half = n // 2  # the commenters are the first half
    among = sum(1 for i in chosen if i < half)
    assert abs(among - half * share) <= 1
