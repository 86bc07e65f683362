"""A rung's packet history and GOP cache: what NACKs and joins are answered from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.media.history import GopCache, PacketHistory


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(0, 200_000),
    frames=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    size=st.sampled_from([16, 64, 1024]),
)
def test_history_finds_exactly_the_last_size_packets_by_their_16_bit_number(
    first: int, frames: list[int], size: int
) -> None:
    history = PacketHistory(size, first_seq=first)
    sent: list[tuple[int, bytes, int, bool]] = []
    for n, count in enumerate(frames):
        payloads = [f"{n}.{i}".encode() for i in range(count)]
        start = history.add(payloads, n * 3000)
        assert start == (sent[-1][0] + 1 if sent else first)
        sent += [(start + i, p, n * 3000, i == count - 1) for i, p in enumerate(payloads)]
    assert history.next_seq == sent[-1][0] + 1
    for entry in sent[-size:]:
        assert history.find(entry[0] % 65536) == entry
    for entry in sent[:-size]:
        assert history.find(entry[0] % 65536) is None
    assert history.find((sent[-1][0] + 1) % 65536) is None  # never sent yet


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 0.2)), min_size=1, max_size=80), st.integers(2, 30))
def test_gop_cache_holds_every_frame_since_the_last_keyframe_or_nothing(
    frames: list[tuple[bool, float]], limit: int
) -> None:
    cache: GopCache[int] = GopCache(limit)
    now = 0.0
    last_key: int | None = None
    for n, (keyframe, gap) in enumerate(frames):
        now += gap
        cache.add(n, keyframe, now)
        if keyframe:
            last_key = n
        if cache.frames:
            assert last_key is not None and cache.frames == list(range(last_key, n + 1))
            assert len(cache.frames) <= limit
        else:
            assert last_key is None or n - last_key + 1 > limit


def test_gop_cache_serves_joins_only_while_its_keyframe_is_recent() -> None:
    cache: GopCache[str] = GopCache(90)
    cache.add("p", False, 0.0)
    assert cache.fresh(0.0, 0.5) is None  # no keyframe yet
    cache.add("k", True, 1.0)
    cache.add("p1", False, 1.1)
    assert cache.fresh(1.4, 0.5) == ["k", "p1"]
    assert cache.fresh(1.5, 0.5) is None
    cache.clear()
    assert cache.fresh(1.2, 0.5) is None
