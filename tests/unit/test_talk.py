"""The conversation's pure cores: which comments pass, what viewers see of them, exact like totals."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.identity import Identity
from relay.talk.comments import Comment, CommentPolicy, CommentRefused, CommentRules
from relay.talk.display import HOST, OTHER, QUESTION, DisplaySampler, priority
from relay.talk.likes import LikeRefused, LikeTally
from relay.talk.store import TalkStore

ANN = Identity("u-ann", "Ann")
BO = Identity("u-bo", "Bo")
HOST_ID = Identity("host", "Host", "host")
GUEST = Identity("guest-1", "Guest 1", guest=True)


def refusal(policy: CommentPolicy, who: Identity, text: object, now: float) -> CommentRefused:
    with pytest.raises(CommentRefused) as info:
        policy.check(who, text, now=now, pts_ms=0)
    return info.value


def test_a_comment_passes_with_an_id_and_its_media_time() -> None:
    policy = CommentPolicy(CommentRules())
    first = policy.check(ANN, "  Is the scarf silk?  ", now=10.0, pts_ms=1234)
    second = policy.check(BO, "love it", now=10.0, pts_ms=1240)
    assert (first.id, first.text, first.pts_ms, first.name) == (1, "Is the scarf silk?", 1234, "Ann")
    assert second.id == 2


def test_every_rule_refuses_with_its_own_reason_and_status() -> None:
    policy = CommentPolicy(CommentRules(words=("spam", "scam"), anonymous=False))
    assert refusal(policy, ANN, "x" * 201, 0).status == 422
    assert "200 characters" in refusal(policy, ANN, "x" * 201, 0).reason
    assert refusal(policy, ANN, "   ", 0).reason == "a comment must not be empty"
    assert "does not allow" in refusal(policy, ANN, "what a SCAM this is", 0).reason
    policy.check(ANN, "scampi are fine", now=0.2, pts_ms=0)  # whole words only
    assert refusal(policy, ANN, "Scampi are fine", 5.0).reason == "you just said that"
    assert refusal(policy, GUEST, "hello", 0).status == 401
    policy.ban("u-bo")
    assert refusal(policy, BO, "hello", 0).status == 403
    policy.unban("u-bo")
    policy.mute("u-bo", until=100.0)
    muted = refusal(policy, BO, "hello", 40.0)
    assert muted.status == 403 and "60 more seconds" in muted.reason
    policy.check(BO, "hello", now=100.0, pts_ms=0)


def test_a_viewer_posting_too_fast_is_told_when_to_retry_but_the_host_is_never_limited() -> None:
    policy = CommentPolicy(CommentRules(per_viewer_interval_s=3.0))
    policy.check(ANN, "one", now=0.0, pts_ms=0)
    policy.check(ANN, "two", now=0.0, pts_ms=0)  # a burst of two
    slow = refusal(policy, ANN, "three", 0.0)
    assert slow.status == 429 and slow.headers()["Retry-After"] == "3"
    policy.check(ANN, "three", now=3.0, pts_ms=0)
    for n in range(50):
        policy.check(HOST_ID, f"host {n}", now=0.0, pts_ms=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 0.5)), max_size=300))
def test_no_viewer_and_no_stream_ever_exceeds_its_rate(posts: list[tuple[int, float]]) -> None:
    rules = CommentRules(per_viewer_interval_s=3.0, per_stream_per_s=20.0, duplicate_window_s=0)
    policy = CommentPolicy(rules)
    now = 0.0
    accepted: list[tuple[int, float]] = []
    for n, (viewer, gap) in enumerate(posts):
        now += gap
        try:
            policy.check(Identity(f"v{viewer}", "v"), f"text {n}", now=now, pts_ms=0)
        except CommentRefused as exc:
            assert exc.status == 429
            continue
        accepted.append((viewer, now))
    for viewer in {v for v, _ in accepted}:
        times = [t for v, t in accepted if v == viewer]
        for i, t in enumerate(times):  # burst 2, then one per 3 s
            assert sum(1 for u in times[i:] if u < t + 3.0 - 1e-9) <= 2
    for _, t in accepted:
        assert sum(1 for _, u in accepted if t <= u < t + 1.0 - 1e-9) <= 40  # burst 20 + 20/s
    assert policy.accepted == len(accepted)


def comment(n: int, at: float, role: str = "viewer", text: str = "hi") -> Comment:
    return Comment(n, f"u{n}", f"U{n}", role, text, at, 0)  # type: ignore[arg-type]


def test_host_words_and_questions_about_the_card_on_screen_come_first() -> None:
    titles = ["Silk scarf"]
    assert priority(comment(1, 0, "moderator"), titles) == HOST
    assert priority(comment(2, 0, text="is the scarf washable?"), titles) == QUESTION
    assert priority(comment(3, 0, text="is it raining?"), titles) == OTHER
    sampler = DisplaySampler(per_s=2)
    for n, rank in ((1, OTHER), (2, OTHER), (3, QUESTION), (4, HOST)):
        sampler.offer(comment(n, 0.0), rank)
    assert [c.id for c in sampler.due(0.0)] == [4, 3]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 5), st.sampled_from([HOST, QUESTION, OTHER]))))
def test_viewers_never_get_more_than_the_cap_in_any_second_nor_anything_stale(
    steps: list[tuple[float, int, int]],
) -> None:
    sampler = DisplaySampler(per_s=10, max_age_s=3.0)
    now, n = 0.0, 0
    shown: list[tuple[float, Comment]] = []
    for gap, burst, rank in steps:
        now += gap
        for _ in range(burst):
            n += 1
            sampler.offer(comment(n, now), rank)
        shown += [(now, c) for c in sampler.due(now)]
    for t, _ in shown:
        assert sum(1 for u, _ in shown if t <= u < t + 1.0) <= 10
    assert all(at - c.at <= 3.0 for at, c in shown)
    assert len({c.id for _, c in shown}) == len(shown)  # nothing shown twice


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 150), st.sampled_from([None, "rose", "BAD gift"]), st.floats(0, 0.4))))
def test_like_totals_are_exactly_the_accepted_taps_and_broadcast_at_most_twice_a_second(
    batches: list[tuple[int, str | None, float]],
) -> None:
    tally = LikeTally(interval_s=0.5, max_batch=100)
    expected: dict[str | None, int] = {}
    now, sent = 0.0, []
    for count, gift, gap in batches:
        now += gap
        try:
            tally.add(count, gift)
        except LikeRefused:
            assert not 1 <= count <= 100 or gift == "BAD gift"
        else:
            expected[gift] = expected.get(gift, 0) + count
        if tally.due(now):
            sent.append(now)
    assert tally.total == expected.get(None, 0)
    assert tally.gifts == {g: c for g, c in expected.items() if g is not None}
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(sent))


def _reference_display(steps: list[tuple[float, int, int]], per_s: int, max_age_s: float) -> list[tuple[float, int]]:
    """The display by its definition, with nothing capped: every waiting comment is considered,
    best priority first, then newest (then the later offered)."""
    waiting: list[tuple[int, Comment]] = []
    shown_at: list[float] = []
    out: list[tuple[float, int]] = []
    now, n = 0.0, 0
    for gap, burst, rank in steps:
        now += gap
        for _ in range(burst):
            n += 1
            waiting.append((rank, comment(n, now)))
        waiting = [(r, c) for r, c in waiting if now - c.at <= max_age_s]
        waiting.sort(key=lambda w: (w[0], -w[1].at, -w[1].id))
        budget = per_s - sum(1 for t in shown_at if now - t < 1.0)
        for _, c in waiting[: max(0, budget)]:
            out.append((now, c.id))
            shown_at.append(now)
        waiting = waiting[max(0, budget) :]
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 0.5), st.integers(0, 40), st.sampled_from([HOST, QUESTION, OTHER])), max_size=60),
    st.integers(1, 10),
)
def test_the_capped_display_shows_exactly_what_an_uncapped_one_would(
    steps: list[tuple[float, int, int]], per_s: int
) -> None:
    sampler = DisplaySampler(per_s=per_s, max_age_s=3.0)
    now, n = 0.0, 0
    shown: list[tuple[float, int]] = []
    for gap, burst, rank in steps:
        now += gap
        for _ in range(burst):
            n += 1
            sampler.offer(comment(n, now), rank)
        shown += [(now, c.id) for c in sampler.due(now)]
    assert shown == _reference_display(steps, per_s, 3.0)


def test_the_store_gives_a_replay_the_comments_of_its_time_span_oldest_first_without_deleted_ones(
    tmp_path: Path,
) -> None:
    store = TalkStore(tmp_path / "talk.sqlite3")
    try:
        made = [Comment(n, f"v{n}", f"Viewer {n}", "viewer", f"hello {n}", 1000.0 + n, 500 * n) for n in range(1, 9)]
        other = Comment(99, "v99", "Elsewhere", "viewer", "another stream", 1003.5, 0)
        store.write("shop", made[:5], [], None)
        store.write("other", [other], [], None)
        store.write("shop", made[5:], [(1006.5, "delete", None, 4)], None)
        found = store.between("shop", 1002.0, 1007.0, 100)
        assert [c.id for c in found] == [2, 3, 5, 6, 7]  # 4 was deleted; 1 and 8 are outside the span
        assert found[0] == made[1]
        assert [c.id for c in store.between("shop", 1002.0, 1007.0, 2)] == [2, 3]
    finally:
        store.close()
