from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from transcode.keyframes import KeyframeGate


def test_no_request_means_no_forced_keyframe() -> None:
    gate = KeyframeGate(0.5)
    assert not gate.should_force(0.0)
    assert not gate.should_force(100.0)


def test_first_request_is_served_on_the_next_frame() -> None:
    gate = KeyframeGate(0.5)
    gate.request(1.0)
    assert gate.should_force(1.0)


def test_requests_during_the_interval_coalesce_into_one_keyframe_at_its_end() -> None:
    gate = KeyframeGate(0.5)
    forced_at: list[float] = []
    for frame in range(60):  # two seconds of 30 fps frames
        now = frame / 30
        if frame in (0, 3, 6, 9, 12):  # five viewers join 100 ms apart
            gate.request(now)
        if gate.should_force(now):
            forced_at.append(now)
            gate.keyframe_sent(now)
    assert forced_at == [0.0, 0.5]


def test_request_soon_after_a_keyframe_waits_for_the_interval() -> None:
    gate = KeyframeGate(0.5)
    gate.request(0.0)
    assert gate.should_force(0.0)
    gate.keyframe_sent(0.0)
    gate.request(0.2)
    assert not gate.should_force(0.2)
    assert not gate.should_force(0.49)
    assert gate.should_force(0.5)


def test_a_natural_keyframe_satisfies_pending_requests() -> None:
    gate = KeyframeGate(0.5)
    gate.request(3.0)
    gate.keyframe_sent(3.0)  # the GOP boundary happened to come first
    assert not gate.pending
    assert not gate.should_force(10.0)


@given(st.lists(st.tuples(st.floats(0, 60), st.booleans()), max_size=200), st.floats(0.05, 2.0))
def test_forced_keyframes_never_closer_than_the_interval(events: list[tuple[float, bool]], interval: float) -> None:
    gate = KeyframeGate(interval)
    forced_at: list[float] = []
    for now, asks in sorted(events):
        if asks:
            gate.request(now)
        if gate.should_force(now):
            forced_at.append(now)
            gate.keyframe_sent(now)
    gaps = [b - a for a, b in itertools.pairwise(forced_at)]
    assert all(g >= interval for g in gaps)
    # Every request is eventually served: nothing stays pending once time has moved on.
    if events:
        last = max(t for t, _ in events) + interval * 1.5
        if gate.should_force(last):
            gate.keyframe_sent(last)
        assert not gate.pending
