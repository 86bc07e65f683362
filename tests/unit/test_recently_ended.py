"""relay.sessions.ended: the bounded, expiring record behind the forgiving DELETE."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.sessions.ended import RecentlyEnded


def test_a_session_is_remembered_for_ttl_seconds_on_its_own_stream() -> None:
    ended = RecentlyEnded(capacity=8, ttl_s=60)
    ended.record("abc", "whep/live", now=100.0)
    assert ended.ended("abc", "whep/live", now=100.0)
    assert ended.ended("abc", "whep/live", now=159.9)
    assert not ended.ended("abc", "whip/live", now=101.0)  # a publisher URL is another resource
    assert not ended.ended("abc", "whep/second", now=101.0)
    assert not ended.ended("abc", "whep/live", now=160.0)
    assert len(ended) == 0  # expired entries are gone, not just hidden


def test_the_oldest_are_forgotten_past_capacity() -> None:
    ended = RecentlyEnded(capacity=2, ttl_s=60)
    for n, sid in enumerate("abc"):
        ended.record(sid, "s", now=float(n))
    assert [ended.ended(sid, "s", now=3.0) for sid in "abc"] == [False, True, True]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RecentlyEnded(capacity=0)
    with pytest.raises(ValueError):
        RecentlyEnded(ttl_s=0)


events = st.lists(
    st.tuples(st.sampled_from(["record", "ask"]), st.sampled_from("abcdefgh"), st.sampled_from(["s1", "s2"]),
              st.floats(min_value=0, max_value=5)),
    max_size=200,
)


@given(events, st.integers(min_value=1, max_value=6), st.floats(min_value=0.5, max_value=20))
def test_it_answers_like_a_full_log_limited_to_capacity_and_ttl(ops: list[tuple[str, str, str, float]],
                                                               capacity: int, ttl: float) -> None:
    ended = RecentlyEnded(capacity=capacity, ttl_s=ttl)
    now = 0.0
    log: list[tuple[str, str, float]] = []  # every record, in order: the model
    for op, sid, stream, step in ops:
        now += step  # a monotonic clock
        if op == "record":
            ended.record(sid, stream, now)
            log = [e for e in log if e[0] != sid] + [(sid, stream, now)]
        else:
            fresh = [e for e in log if now - e[2] < ttl]
            kept = fresh[-capacity:]
            expected = any(e[0] == sid and e[1] == stream for e in kept)
            assert ended.ended(sid, stream, now) == expected
        assert len(ended) <= capacity
