"""The edge's cache of relayed LL-HLS answers (relay/cluster/response_cache)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cluster.response_cache import IMMUTABLE_TTL_S, Fetched, ResponseCache, cache_ttl


@pytest.mark.parametrize(
    ("status", "header", "ttl"),
    [
        (200, "public, max-age=31536000, immutable", IMMUTABLE_TTL_S),  # a part or segment
        (200, "public, max-age=1", 1.0),  # a playlist
        (200, "public, max-age=6", 6.0),  # a blocking answer
        (200, "private, max-age=1", 0.0),  # a protected stream's, named for one viewer
        (200, "private, max-age=31536000, immutable", 0.0),
        (200, "no-store", 0.0),
        (200, "", 0.0),
        (404, "public, max-age=60", 0.0),  # errors are never kept: the part may exist a moment later
        (200, "public, s-maxage=5", 0.0),  # not max-age
    ],
)
def test_what_the_origin_lets_an_edge_keep(status: int, header: str, ttl: float) -> None:
    assert cache_ttl(status, header) == ttl


def _answer(size: int) -> Fetched:
    return Fetched(200, b"x" * size, "video/mp4", "public, max-age=1")


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    cache = ResponseCache(max_bytes=100)
    cache.put("a", _answer(40), 10, now=0)
    cache.put("b", _answer(40), 1, now=0)
    assert cache.get("b", now=0.5) is not None
    assert cache.get("b", now=1.0) is None  # expired at its expiry, not after
    cache.put("b", _answer(40), 10, now=1)
    assert cache.get("a", now=2) is not None  # a is now the most recently used
    cache.put("c", _answer(40), 10, now=2)  # 120 bytes: b goes
    assert cache.get("b", now=2) is None and cache.get("a", now=2) is not None and cache.bytes == 80
    cache.put("huge", _answer(101), 10, now=2)  # larger than the whole cache: not kept
    assert cache.get("huge", now=2) is None and cache.bytes == 80


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "get"]),
        st.integers(0, 7),  # key
        st.integers(0, 60),  # body size
        st.floats(0, 5),  # ttl
        st.floats(0, 2),  # time passing before the op
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(OPS)
def test_never_over_its_bytes_and_never_an_expired_answer(ops: list[tuple[str, int, int, float, float]]) -> None:
    cache = ResponseCache(max_bytes=150)
    now = 0.0
    expiry: dict[str, float] = {}
    for op, key_number, size, ttl, step in ops:
        now += step
        key = f"k{key_number}"
        if op == "put":
            cache.put(key, _answer(size), ttl, now)
            if ttl > 0 and size <= cache.max_bytes:
                expiry[key] = now + ttl
        else:
            got = cache.get(key, now)
            if got is not None:
                assert now < expiry[key]
        assert 0 <= cache.bytes <= cache.max_bytes
