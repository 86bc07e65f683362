"""An edge's viewers' talk on its way to the origin (relay.talk.forward), the node messages that
carry it (relay.messages), and the origin taking it as its own viewers' (TalkFeed.from_edge)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.identity import Identity
from relay.messages import (
    BadMessage,
    Bans,
    EdgeTalk,
    encode_to_viewers,
    parse_bans,
    parse_edge_talk,
    parse_to_viewers,
)
from relay.talk.comments import CommentRefused, CommentRules
from relay.talk.feed import TalkFeed
from relay.talk.forward import MAX_MESSAGE_BYTES, EdgeTalkBuffer
from relay.talk.likes import LikeRefused

ANN = Identity("u-ann", "Ann")
texts = st.text(min_size=0, max_size=400)
posts = st.lists(st.tuples(st.sampled_from(["v1", "v2", "v3"]), texts), max_size=300)
likes = st.lists(st.tuples(st.integers(1, 100), st.sampled_from([None, "rose", "rocket"])), max_size=50)


@given(posts, likes, st.floats(0, 1000))
def test_every_comment_leaves_once_in_order_and_likes_are_summed_exactly(
    comments: list[tuple[str, str]], taps: list[tuple[int, str | None]], now: float
) -> None:
    buffer = EdgeTalkBuffer(max_waiting=10_000)
    for ref, text in comments:
        buffer.comment(ref, Identity(f"sub-{ref}", f"name {ref}", "viewer", True), text)
    for count, gift in taps:
        buffer.like(count, gift)
    messages = buffer.due(now)
    assert buffer.due(now) == [] and not buffer.waiting
    parsed = [parse_edge_talk(m) for m in messages]
    assert [(c.ref, c.text) for p in parsed for c in p.comments] == comments
    assert all(c.sub == f"sub-{c.ref}" and c.guest for p in parsed for c in p.comments)
    assert sum(p.likes for p in parsed) == sum(n for n, g in taps if g is None)
    for gift in ("rose", "rocket"):
        assert sum(p.gifts.get(gift, 0) for p in parsed) == sum(n for n, g in taps if g == gift)
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES + 200 for m in messages)
    assert (messages == []) == (not comments and not taps)


def test_talk_goes_at_most_every_interval() -> None:
    buffer = EdgeTalkBuffer(interval_s=0.1)
    assert buffer.next_due(5.0) is None
    buffer.comment("v1", ANN, "first")
    assert buffer.next_due(5.0) == 5.0 and len(buffer.due(5.0)) == 1
    buffer.like(3)
    assert buffer.next_due(5.05) == pytest.approx(5.1) and buffer.due(5.05) == []
    assert [parse_edge_talk(m).likes for m in buffer.due(5.1)] == [3]


def test_the_edge_refuses_at_once_what_the_origin_would_and_a_full_buffer() -> None:
    buffer = EdgeTalkBuffer(max_waiting=2)
    with pytest.raises(LikeRefused):
        buffer.like(101)
    with pytest.raises(LikeRefused):
        buffer.like(1, "Rose!")
    with pytest.raises(CommentRefused):
        buffer.comment("v1", ANN, 42)
    buffer.comment("v1", ANN, "a")
    buffer.comment("v2", ANN, "b")
    with pytest.raises(CommentRefused) as refused:
        buffer.comment("v3", ANN, "c")
    assert refused.value.status == 503
    assert buffer.drop() == ["v1", "v2"]
    assert [parse_edge_talk(m).comments for m in buffer.due(0.0)] == [()]  # only the audience, for the next pull


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"type": "comment", "text": "hi"}',
        '{"type": "edge_talk", "comments": [["v1", "s", "n", "viewer", "no", "text"]]}',
        '{"type": "edge_talk", "comments": [["v1", "s"]]}',
        '{"type": "edge_talk", "likes": -1}',
        '{"type": "edge_talk", "likes": true}',
        '{"type": "edge_talk", "gifts": {"rose": "many"}}',
        '{"type": "edge_talk", "comments": ' + json.dumps([["v", "s", "n", "viewer", False, "t"]] * 65) + "}",
    ],
)
def test_what_is_not_edge_talk_is_a_bad_message(text: str) -> None:
    with pytest.raises(BadMessage):
        parse_edge_talk(text)


def test_to_viewers_round_trips_and_refuses_other_shapes() -> None:
    items = [("v1", '{"type":"error","reason":"no","status":422}'), ("v2", "{}")]
    assert parse_to_viewers(json.loads(encode_to_viewers(items))) == items
    for bad in ({"items": "x"}, {"items": [["v1"]]}, {"items": [["v1", 3]]}, {}):
        with pytest.raises(BadMessage):
            parse_to_viewers(bad)


def _feed() -> tuple[TalkFeed, list[str]]:
    sent: list[str] = []
    feed = TalkFeed("s", CommentRules(max_chars=20), store=None, store_pool=None, pts_ms=lambda: 1234,
                    broadcast=sent.append, on_screen_titles=lambda: ["Stoneware mug"])  # fmt: skip
    return feed, sent


def test_the_origin_takes_an_edges_talk_as_its_own_viewers_and_answers_each_poster() -> None:
    feed, _ = _feed()
    buffer = EdgeTalkBuffer()
    buffer.comment("v1", Identity("u-ann", "Ann"), "is the mug safe?")
    buffer.comment("v2", Identity("u-bob", "Bob"), "far too long for this stream's rules")
    buffer.comment("v3", Identity("u-cat", "Cat", "moderator"), "welcome")
    buffer.like(5)
    buffer.like(2, "rose")
    replies: list[list[tuple[str, str]]] = []
    for message in buffer.due(0.0):
        feed.from_edge(parse_edge_talk(message), replies.append)
    assert len(replies) == 1  # one to_viewers for what was decided at once
    answers = {ref: json.loads(text) for ref, text in replies[0]}
    assert answers["v1"]["type"] == "comment" and answers["v1"]["mine"] and answers["v1"]["pts_ms"] == 1234
    assert answers["v2"] == {"type": "error", "reason": answers["v2"]["reason"], "status": 422}
    assert answers["v3"]["role"] == "moderator"
    assert [c.sub for c in feed.recent] == ["u-ann", "u-cat"] and feed.policy.accepted == 2
    assert (feed.likes.total, feed.likes.gifts) == (5, {"rose": 2})


def test_an_edge_cannot_smuggle_a_role_or_a_long_name() -> None:
    feed, _ = _feed()
    talk = parse_edge_talk(json.dumps({"type": "edge_talk",
                                       "comments": [["v1", "u-x", "N" * 500, "admin", False, "hi"]]}))  # fmt: skip
    feed.from_edge(talk, lambda items: None)
    (comment,) = feed.recent
    assert comment.role == "viewer" and len(comment.name) <= 40
    assert isinstance(talk, EdgeTalk)


def test_a_relay_passes_an_edges_talk_up_with_refs_that_find_their_way_back() -> None:
    edge, relay = EdgeTalkBuffer(), EdgeTalkBuffer(max_waiting=2)
    for n in range(3):
        edge.comment(f"v{n}", ANN, f"comment {n}")
    edge.like(5)
    edge.like(2, "rose")
    (message,) = edge.due(0.0)
    refused = relay.add(parse_edge_talk(message), "pull7")
    assert refused == ["v2"]  # no room for the third: its viewer is told
    (up,) = (parse_edge_talk(m) for m in relay.due(0.0))
    assert [c.ref for c in up.comments] == ["pull7/v0", "pull7/v1"]
    assert (up.likes, dict(up.gifts)) == (5, {"rose": 2})


def test_the_audience_goes_up_with_the_talk_and_a_relay_adds_its_edges() -> None:
    edge, relay = EdgeTalkBuffer(), EdgeTalkBuffer()
    edge.audience(1, joined=True)
    edge.audience(2, joined=True)
    edge.clicked("v1", "mug")
    (message,) = edge.due(0.0)
    talk = parse_edge_talk(message)
    assert (talk.viewers, talk.joins, talk.clicks) == (2, 2, (("v1", "mug"),))
    assert not edge.waiting
    edge.audience(1, joined=False)
    assert edge.waiting and parse_edge_talk(edge.due(1.0)[0]).viewers == 1

    relay.audience(3, joined=True)
    relay.add(talk, "pullA")
    (up,) = (parse_edge_talk(m) for m in relay.due(0.0))
    assert (up.viewers, up.joins, up.clicks) == (5, 3, (("pullA/v1", "mug"),))
    relay.below_gone("pullA")
    assert parse_edge_talk(relay.due(1.0)[0]).viewers == 3
    relay.drop()  # the pull broke: the next one is told the whole audience again
    assert relay.waiting and parse_edge_talk(relay.due(2.0)[0]).viewers == 3


def test_bans_reach_the_edges_whole_on_open_then_each_change_and_edges_pass_them_on() -> None:
    told: list[str] = []
    origin = TalkFeed("s", CommentRules(), store=None, store_pool=None, pts_ms=lambda: 0, broadcast=lambda m: None,
                      on_screen_titles=list, tell_nodes=told.append)  # fmt: skip
    for n in range(1203):
        origin.policy.ban(f"u-{n}")
    opening = origin.bans_for_nodes()
    assert len(opening) == 3 and all(len(m) < 64 * 1024 for m in opening)  # in pieces
    origin.ban("u-late")
    origin.unban("u-7")
    assert [parse_bans(json.loads(m)) for m in told] == [Bans(("u-late",), True), Bans(("u-7",), False)]

    onward: list[str] = []
    edge = TalkFeed("s", CommentRules(), store=None, store_pool=None, pts_ms=lambda: 0, broadcast=lambda m: None,
                    on_screen_titles=list, tell_nodes=onward.append)  # fmt: skip
    for message in [*opening, *told]:
        edge.mirror_bans(parse_bans(json.loads(message)))
    assert edge.policy.banned == origin.policy.banned and edge.policy.is_banned("u-late")
    assert not edge.policy.is_banned("u-7") and len(onward) == len(opening) + 2  # a relay tells its edges
    for bad in ({"subs": "u-1"}, {"subs": [1]}, {"subs": ["u"], "banned": "yes"}):
        with pytest.raises(BadMessage):
            parse_bans(bad)
