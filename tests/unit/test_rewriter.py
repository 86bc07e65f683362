"""A viewer's RTP numbering across rung switches: contiguous, monotonic, and NACKs map back exactly.

The model below drives ``RtpRewriter`` the way the fan-out does: several rungs number their own
packets (``PacketHistory``) and emit the same media frames in an interleaving hypothesis picks
(rungs finish a frame at different moments), one viewer joins on a keyframe and switches rung on
the target's keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.media.history import PacketHistory
from relay.media.rewriter import SEQ_MOD, RtpRewriter

TICKS_PER_FRAME = 3000  # 30 fps at 90 kHz


@dataclass
class Rung:
    name: str
    history: PacketHistory
    frames: list[tuple[bool, int]]  # (keyframe, packets) of frame k, in order
    emitted: int = 0
    last_ts: int | None = None


@dataclass
class Sent:
    out_seq: int
    out_ts: int
    payload: bytes
    media_ts: int = 0


@dataclass
class Viewer:
    rewriter: RtpRewriter[Rung]
    rung: Rung | None = None
    target: Rung | None = None
    sent: list[Sent] = field(default_factory=list)
    anchors: list[tuple[int, int]] = field(default_factory=list)  # every mapping's, as told the player


def payload(rung: Rung, seq: int) -> bytes:
    return f"{rung.name}:{seq}".encode()


def frames_strategy(n: int) -> st.SearchStrategy[list[tuple[bool, int]]]:
    return st.lists(st.tuples(st.booleans(), st.integers(1, 5)), min_size=n, max_size=n)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Rung], list[int | str], RtpRewriter[Rung]]:
    n_frames = draw(st.integers(4, 40))
    rungs = [
        Rung(
            name,
            PacketHistory(256, draw(st.sampled_from([0, 65_530, 131_000]) | st.integers(0, 200_000))),
            draw(frames_strategy(n_frames)),
        )
        for name in ("720p", "480p", "240p")
    ]
    # Every rung emits all its frames in order; the steps interleave them, with switch requests between.
    steps: list[int | str] = []
    remaining = {i: n_frames for i in range(len(rungs))}
    while remaining:
        if draw(st.integers(0, 4)) == 0:
            steps.append(draw(st.sampled_from([r.name for r in rungs])))
        index = draw(st.sampled_from(sorted(remaining)))
        steps.append(index)
        remaining[index] -= 1
        if not remaining[index]:
            del remaining[index]
    rewriter: RtpRewriter[Rung] = RtpRewriter(draw(st.integers(0, SEQ_MOD - 1)), draw(st.integers(0, 2**32 - 1)))
    return rungs, steps, rewriter


def run(rungs: list[Rung], steps: list[int | str], rewriter: RtpRewriter[Rung]) -> Viewer:
    by_name = {r.name: r for r in rungs}
    viewer = Viewer(rewriter, target=rungs[1])
    for step in steps:
        if isinstance(step, str):
            wanted = by_name[step]
            viewer.target = None if wanted is viewer.rung else wanted
            continue
        rung = rungs[step]
        keyframe, packets = rung.frames[rung.emitted]
        ts = rung.emitted * TICKS_PER_FRAME
        rung.emitted += 1
        payloads = [b""] * packets
        old_next = rung.history.next_seq
        first = rung.history.add([payload(rung, old_next + i) for i in range(len(payloads))], ts)
        if keyframe and rung is viewer.target:
            old = viewer.rung
            if old is None:
                rewriter.start(rung, first, ts)
            else:
                rewriter.switch(rung, first, ts, old.history.next_seq, old.last_ts)
            assert rewriter.anchor is not None
            viewer.anchors.append(rewriter.anchor)
            viewer.rung, viewer.target = rung, None
        if rung is viewer.rung:
            for i in range(packets):
                out = Sent(rewriter.out_seq(first + i), rewriter.out_ts(ts), payload(rung, first + i), ts)
                viewer.sent.append(out)
        rung.last_ts = ts
    return viewer


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_sequence_numbers_stay_contiguous_and_timestamps_move_forward_across_any_switches(
    scenario: tuple[list[Rung], list[int | str], RtpRewriter[Rung]],
) -> None:
    viewer = run(*scenario)
    for before, after in pairwise(viewer.sent):
        assert after.out_seq == (before.out_seq + 1) % SEQ_MOD
        step = (after.out_ts - before.out_ts) % 2**32
        assert step < 2**31  # never backwards (modulo wrap)
    frame_starts = [viewer.sent[0]] if viewer.sent else []
    frame_starts += [b for a, b in pairwise(viewer.sent) if b.out_ts != a.out_ts]
    for before, after in pairwise(frame_starts):
        assert 0 < (after.out_ts - before.out_ts) % 2**32 < 2**31  # a new frame, a later time


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_a_nack_maps_back_to_exactly_the_packet_the_viewer_was_sent_or_to_nothing(
    scenario: tuple[list[Rung], list[int | str], RtpRewriter[Rung]],
) -> None:
    viewer = run(*scenario)
    rewriter = viewer.rewriter
    for sent in viewer.sent[-300:]:  # well inside half the number space: out numbers are unambiguous
        origin = rewriter.resolve(sent.out_seq)
        if origin is None:
            continue
        rung, seq16, ts_off = origin
        entry = rung.history.find(seq16)
        if entry is None:
            continue  # too old for the rung's history: not answered, which is allowed
        _, data, ts, _ = entry
        assert data == sent.payload  # never another rung's (or another picture's) packet
        assert (ts + ts_off) % 2**32 == sent.out_ts
    # Every packet since the last switch that the rung still keeps is answered.
    if viewer.rung is not None:
        since_switch = []
        for sent in reversed(viewer.sent):
            if not sent.payload.startswith(viewer.rung.name.encode() + b":"):
                break
            since_switch.append(sent)
        for sent in since_switch[: viewer.rung.history.size]:
            origin = rewriter.resolve(sent.out_seq)
            assert origin is not None and origin[0] is viewer.rung
            assert origin[0].history.find(origin[1]) is not None


def test_a_nack_for_a_packet_from_before_the_switch_is_answered_from_the_old_rung() -> None:
    old, new = PacketHistory(64, first_seq=100), PacketHistory(64, first_seq=5000)
    rewriter: RtpRewriter[PacketHistory] = RtpRewriter(40_000, 7)
    rewriter.start(old, old.add([b"o0", b"o1"], 0))  # out 40000, 40001
    new.add([b"n-before-keyframe"], 0)  # the new rung's packet the viewer never got
    keyframe = new.add([b"k0", b"k1"], 3000)
    rewriter.switch(new, keyframe, 3000, old.next_seq, 0)
    assert rewriter.out_seq(keyframe) == 40_002
    origin = rewriter.resolve(40_001)
    assert origin is not None and origin[0] is old and old.find(origin[1]) == (101, b"o1", 0, True)
    origin = rewriter.resolve(40_003)
    assert origin is not None and origin[0] is new and new.find(origin[1]) == (5002, b"k1", 3000, True)
    assert rewriter.resolve(39_999) is None  # before this viewer's first packet


def test_a_keyframe_for_a_frame_the_old_rung_already_sent_gets_a_later_timestamp() -> None:
    rewriter: RtpRewriter[str] = RtpRewriter(0, 1000)
    rewriter.start("720p", 0)
    rewriter.switch("240p", 50, ts=3000, old_next_seq=10, old_last_ts=6000)
    assert rewriter.out_ts(3000) == 6000 + 1000 + 1
    assert rewriter.out_ts(9000) > rewriter.out_ts(6000 + 1)


def signed32(delta: int) -> int:
    delta &= 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 1 << 31 else delta


def media_time(anchors: list[tuple[int, int]], rtp: int) -> int | None:
    """What the player computes (``player_demo/watch.js``, ``mediaTicks``): the newest anchor at
    or before ``rtp`` in the viewer's own (monotonic) RTP time, plus the difference."""
    for media_ts, anchor_rtp in reversed(anchors):
        if signed32(rtp - anchor_rtp) >= 0:
            return media_ts + signed32(rtp - anchor_rtp)
    return None


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_anchors_give_every_frame_sent_its_exact_media_time_across_any_switches(
    scenario: tuple[list[Rung], list[int | str], RtpRewriter[Rung]],
) -> None:
    viewer = run(*scenario)
    for before, after in pairwise(viewer.anchors):
        assert 0 < signed32(after[1] - before[1])  # each mapping starts later in the viewer's RTP time
    for sent in viewer.sent:
        assert media_time(viewer.anchors, sent.out_ts) == sent.media_ts
    if viewer.anchors:
        assert media_time(viewer.anchors, (viewer.anchors[0][1] - 1) & 0xFFFFFFFF) is None  # before any


def test_a_retimed_switch_is_anchored_on_its_keyframe() -> None:
    rewriter: RtpRewriter[str] = RtpRewriter(0, 1000)
    rewriter.start("720p", 0, 0)
    assert rewriter.anchor == (0, 1000)
    rewriter.switch("240p", 50, ts=3000, old_next_seq=10, old_last_ts=6000)
    assert rewriter.anchor == (3000, 7001)  # its keyframe shows frame 3000 at RTP time 7001
    assert media_time([(0, 1000), (3000, 7001)], 7000) == 6000  # the old rung's last frame
    assert media_time([(0, 1000), (3000, 7001)], 7001 + 3000) == 6000  # the new rung's next
