"""The shop's session analytics (pure) against a model that keeps every viewer and every moment."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.sessions.analytics import PAST_SESSIONS, Sessions, SessionStats

EVENTS = st.lists(
    st.tuples(
        st.floats(0, 30),  # seconds since the previous event
        st.sampled_from(["join", "leave", "show", "hide", "click", "comment", "like"]),
        st.sampled_from(["mug", "hat"]),
        st.integers(1, 5),
    ),
    max_size=80,
)


@given(EVENTS)
def test_the_counts_match_a_model_that_remembers_everything(events: list[tuple[float, str, str, int]]) -> None:
    stats = SessionStats(1000.0)
    now, viewers, peak, joins, watch = 1000.0, 0, 0, 0, 0.0
    shown: set[str] = set()
    impressions = {"mug": 0, "hat": 0}
    ever_shown: set[str] = set()
    clicks = {"mug": 0, "hat": 0}
    comments = likes = 0
    for step, kind, card, n in events:
        watch += viewers * step
        now += step
        if kind == "join":
            stats.joined(now)
            viewers, joins = viewers + 1, joins + 1
            peak = max(peak, viewers)
            for c in shown:
                impressions[c] += 1
        elif kind == "leave" and viewers:
            stats.left(now)
            viewers -= 1
        elif kind == "show":
            stats.card_shown(card, card.title(), now)
            if card not in shown:
                impressions[card] += viewers
            shown.add(card)
            ever_shown.add(card)
        elif kind == "hide":
            stats.card_hidden(card, now)
            shown.discard(card)
        elif kind == "click":
            counted = stats.click(f"v{n}", card, now)
            assert counted == (card in ever_shown)
            clicks[card] += counted
        elif kind == "comment":
            stats.commented(n, now)
            comments += n
        elif kind == "like":
            stats.liked(n, now)
            likes += n
    report = stats.report(now)
    seen = report["viewers"]
    assert isinstance(seen, dict)
    assert (seen["now"], seen["peak"], seen["joins"]) == (viewers, peak, joins)
    assert abs(seen["watch_time_s"] - watch) < 0.1 + 1e-6 * watch
    assert seen["average"] <= peak + 1e-9
    assert (report["comments"], report["likes"]) == (comments, likes)
    cards = {c["id"]: c for c in report["cards"]}  # type: ignore[union-attr]
    assert set(cards) == ever_shown
    for card_id, card in cards.items():
        assert (card["impressions"], card["clicks"]) == (impressions[card_id], clicks[card_id])
        assert 0 <= card["ctr"] <= 1 and card["clickers"] <= min(card["clicks"], 5)
    timeline = report["timeline"]
    assert sum(m["comments"] for m in timeline) == comments  # type: ignore[union-attr]
    assert sum(m["likes"] for m in timeline) == likes  # type: ignore[union-attr]


KINDS = st.sampled_from(["join", "leave", "report", "gone"])
REMOTE = st.lists(st.tuples(KINDS, st.sampled_from(["p1", "p2", "p3"]), st.integers(0, 5)), max_size=60)


@given(REMOTE)
def test_other_nodes_viewers_count_as_their_reports_say_and_leave_with_their_pull(
    events: list[tuple[str, str, int]],
) -> None:
    """Edges report (viewers now, joins since) through their pulls; a pull that ends takes its
    viewers with it; a pull made again reports viewers it already had, which are not new joins."""
    stats = SessionStats(0.0)
    present: dict[str, int] = {}  # what each edge has now
    pending: dict[str, int] = {}  # joins not reported yet
    reported: dict[str, int] = {}  # what the server counts for each edge
    joins = 0
    for t, (kind, source, n) in enumerate(events, start=1):
        if kind == "join":
            present[source] = present.get(source, 0) + n
            pending[source] = pending.get(source, 0) + n
        elif kind == "leave":
            present[source] = max(0, present.get(source, 0) - n)
            pending[source] = min(pending.get(source, 0), present[source])
        elif kind == "report":
            stats.remote(source, present.get(source, 0), pending.get(source, 0), float(t))
            joins += pending.pop(source, 0)
            reported[source] = present.get(source, 0)
        else:
            stats.remote_gone(source, float(t))
            reported.pop(source, None)
        assert stats.viewers == sum(reported.values())
        assert stats.joins == joins
        assert stats.peak >= stats.viewers


# ---- sessions -----------------------------------------------------------------------------------
EVENTS = st.lists(st.tuples(st.booleans(), st.floats(0.1, 900)), max_size=40)  # (live?, seconds later)


@given(EVENTS)
def test_a_session_starts_on_the_first_go_live_and_after_an_offline_gap_only(events: list[tuple[bool, float]]) -> None:
    sessions, now = Sessions(0.0, gap_s=300.0), 0.0
    expected, live, offline_at = 0, False, None
    for goes_live, later in events:
        now += later
        if goes_live:
            started = sessions.went_live(now)
            new = not live and (expected == 0 or (offline_at is not None and now - offline_at >= 300.0))
            assert started == new
            expected += new
            if not live:
                offline_at = None
            live = True
        else:
            sessions.went_offline(now)
            if live:
                offline_at = now
            live = False
        assert sessions.number == expected
    assert len(sessions.past) == min(PAST_SESSIONS, max(0, expected - 1))
    assert [p["session"] for p in sessions.past] == list(range(expected - 1, expected - 1 - len(sessions.past), -1))


def test_a_new_session_counts_from_zero_with_the_viewers_still_here_and_a_blip_continues_it() -> None:
    sessions = Sessions(0.0, gap_s=300.0)
    assert sessions.went_live(10.0) and sessions.number == 1
    stats = sessions.current
    for t in (11.0, 12.0, 13.0):
        stats.joined(t)
    stats.card_shown("scarf", "Silk scarf", 14.0)
    stats.commented(5, 15.0)
    sessions.went_offline(20.0)
    assert not sessions.went_live(80.0)  # back within the gap: the same session, its counts kept
    assert sessions.current is stats and sessions.report(81.0)["comments"] == 5
    sessions.went_offline(100.0)
    stats.left(150.0)  # leaves while the stream is offline: not in the ended session's report
    assert sessions.went_live(500.0) and sessions.number == 2
    report = sessions.report(501.0)
    assert (report["comments"], report["session"], report["live"]) == (0, 2, True)
    assert report["viewers"] == {"now": 2, "peak": 2, "average": 2.0, "joins": 2, "watch_time_s": 2.0}
    assert [(c["id"], c["impressions"]) for c in report["cards"]] == [("scarf", 2)]  # still on screen
    (ended,) = report["previous"]
    assert (ended["session"], ended["comments"]) == (1, 5)
    assert ended["viewers"]["now"] == 3 and ended["elapsed_s"] == 90.0  # as it was when it went offline
