"""Transport-cc feedback: every chunk kind parses back to what was built; garbage is one error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.media.twcc import (
    DELTA_US,
    REFERENCE_US,
    BadFeedback,
    TccFeedback,
    build_feedback,
    feedback_blocks,
    feedback_packet,
    merged,
    parse_feedback,
    split_compound,
)

deltas = st.lists(st.one_of(st.none(), st.integers(0, 255), st.integers(-32768, 32767)), min_size=1, max_size=300)


@given(st.integers(0, 0xFFFF), st.integers(-(1 << 23), (1 << 23) - 1), st.integers(0, 255), deltas)
def test_feedback_parses_back_to_the_arrivals_it_was_built_from(
    base: int, ref: int, count: int, ds: list[int | None]
) -> None:
    parsed = parse_feedback(build_feedback(base, ref, count, ds))
    assert parsed.base_seq == base and parsed.feedback_count == count
    at = ref * REFERENCE_US
    expected: list[tuple[int, int | None]] = []
    for n, d in enumerate(ds):
        if d is None:
            expected.append(((base + n) & 0xFFFF, None))
        else:
            at += d * DELTA_US
            expected.append(((base + n) & 0xFFFF, at))
    assert parsed.arrivals == expected


def test_long_runs_and_one_bit_vectors_are_both_used() -> None:
    fci = build_feedback(10, 0, 0, [1] * 20 + [None] * 3 + [1] * 14)
    chunks = [int.from_bytes(fci[8 + 2 * i : 10 + 2 * i], "big") for i in range(2)]
    assert not chunks[0] & 0x8000 and chunks[0] & 0x1FFF == 20  # run length
    assert parse_feedback(fci).arrivals[20] == (30, None)


@given(st.binary(max_size=200))
def test_garbage_raises_only_bad_feedback(data: bytes) -> None:
    try:
        parse_feedback(data)
    except BadFeedback:
        pass


def test_blocks_are_found_in_a_compound_packet_beside_a_receiver_report() -> None:
    rr = bytes([0x81, 201, 0, 7]) + bytes(28)
    fci = build_feedback(5, 1, 2, [4, None, 8])
    compound = rr + feedback_packet(1, 2, fci) + bytes([0x81, 205, 0, 3]) + bytes(12)  # a NACK after it
    assert feedback_blocks(compound) == [fci]
    assert feedback_blocks(b"\x00\x01garbage") == []
    assert feedback_blocks(compound[:-3]) == [fci]  # a truncated tail stops the walk, keeps what parsed


def test_transport_cc_is_taken_out_of_the_compound_and_the_rest_kept_for_aiortc() -> None:
    rr = bytes([0x81, 201, 0, 7]) + bytes(28)
    nack = bytes([0x81, 205, 0, 3]) + bytes(12)
    fci = build_feedback(5, 1, 2, [4, None, 8])
    blocks, rest = split_compound(rr + feedback_packet(1, 2, fci) + nack)
    assert blocks == [fci] and rest == rr + nack
    assert split_compound(feedback_packet(1, 2, fci)) == ([fci], b"")  # a browser's: nothing left
    assert split_compound(rr) == ([], rr)


@given(st.integers(0, 0xFFFF), st.lists(deltas, min_size=1, max_size=5))
def test_consecutive_feedback_merges_into_the_arrivals_of_its_parts(base: int, parts: list[list[int | None]]) -> None:
    feedbacks = []
    seq = base
    for n, ds in enumerate(parts):
        feedbacks.append(parse_feedback(build_feedback(seq, n, n, ds)))
        seq = (seq + len(ds)) & 0xFFFF
    (one,) = merged(feedbacks)
    assert one.arrivals == [a for f in feedbacks for a in f.arrivals]
    gap = TccFeedback.of(seq + 3, [1000])  # not consecutive: kept apart
    assert merged([*feedbacks, gap])[-1] == gap
