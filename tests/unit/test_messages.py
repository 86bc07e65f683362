"""The viewer wire protocol: what the server sends, what it accepts, and the README's account of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.messages import (
    SERVER_MESSAGES,
    BadMessage,
    Batch,
    BuyClick,
    Bye,
    CardCommand,
    CardMessage,
    Clock,
    CommentBatch,
    CommentMessage,
    CommentPinned,
    CommentRemoved,
    ErrorMessage,
    Like,
    LikeTotals,
    OrderNotice,
    PostComment,
    RenditionChanged,
    RenditionRequest,
    Snapshot,
    StreamState,
    UpsertCard,
    encode,
    encode_batch,
    encode_together,
    parse_card_action,
    parse_viewer_message,
    protocol_markdown,
    split_together,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_server_message_encodes_to_compact_json_with_its_type_first() -> None:
    samples = [
        StreamState("demo", True),
        Snapshot(3, ({"id": "a"},), Clock(4000, 108_000)),
        Clock(4000, 108_000),
        CardMessage(4, "show", {"id": "a"}, 1500, 1.5),
        RenditionChanged("480p", 854, 480, True),
        ErrorMessage("no", 404),
        Bye("server shutting down"),
        CommentMessage(9, "Ann", "viewer", "Is it silk?", 1600, 1.6, mine=True),
        CommentRemoved(9),
        CommentPinned(CommentMessage(9, "Ann", "viewer", "Is it silk?", 1600, 1.6)),
        LikeTotals(120, {"rose": 3}),
        OrderNotice("scarf", "Silk scarf", "Ann", 1, 4),
        CommentBatch((CommentMessage(9, "Ann", "viewer", "Is it silk?", 1600, 1.6, mine=False),)),
        Batch((CommentMessage(9, "Ann", "viewer", "Is it silk?", 1600, 1.6), LikeTotals(3, {}))),
    ]
    assert {type(m) for m in samples} == set(SERVER_MESSAGES)
    for message in samples:
        text = encode(message)
        assert ", " not in text and ": " not in text
        decoded = json.loads(text)
        assert next(iter(decoded)) == "type" and decoded["type"] == message.type
    assert json.loads(encode(Snapshot(3, ()))) == {"type": "snapshot", "seq": 3, "cards": []}
    assert json.loads(encode(CommentPinned(None))) == {"type": "comment_pinned", "comment": None}
    two = [CommentMessage(9, "Ann", "viewer", "silk?", 1600, 1.6), CommentMessage(10, "Bo", "host", "yes", 1700, 1.7)]
    assert encode_batch([encode(c) for c in two]) == encode(CommentBatch(tuple(two)))
    parts = [encode(CommentBatch(tuple(two))), encode(LikeTotals(7, {"rose": 1}))]
    assert encode_together(parts) == encode(Batch((CommentBatch(tuple(two)), LikeTotals(7, {"rose": 1}))))
    assert split_together(encode_together(parts)) == parts  # each as it would have come alone
    assert encode_together(parts[:1]) == parts[0] and split_together(parts[0]) == parts[:1]
    assert json.loads(encode(Snapshot(3, (), Clock(2**32 - 1, 630))))["clock"] == {
        "type": "clock",
        "rtp": 2**32 - 1,
        "media_ts": 630,
        "rtp_clock_hz": 90000,
    }


def test_peer_messages_parse_into_their_types() -> None:
    assert parse_viewer_message('{"type": "rendition", "name": "240p"}') == RenditionRequest("240p")
    assert parse_viewer_message('{"type": "comment", "text": "hi"}') == PostComment("hi")
    assert parse_viewer_message('{"type": "like", "count": 5}') == Like(5)
    assert parse_viewer_message('{"type": "click", "card": "sku-42"}') == BuyClick("sku-42")
    with pytest.raises(BadMessage):
        parse_viewer_message('{"type": "click", "card": 7}')
    assert parse_card_action('{"action": "upsert", "card": {"id": "x"}}') == UpsertCard({"id": "x"})
    assert parse_card_action('{"action": "hide", "id": "x"}') == CardCommand("hide", "x")
    with pytest.raises(BadMessage) as info:
        parse_card_action("{nope")
    assert info.value.status == 400
    with pytest.raises(BadMessage) as info:
        parse_card_action('{"action": "dance"}')
    assert info.value.status == 422 and "action" in info.value.reason


@given(
    st.text(max_size=200)
    | st.builds(
        json.dumps,
        st.recursive(st.none() | st.booleans() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)),
    )
)
def test_anything_a_peer_sends_either_parses_or_raises_bad_message(text: str) -> None:
    for parse in (parse_viewer_message, parse_card_action):
        try:
            parse(text)
        except BadMessage:
            pass


def test_the_readme_protocol_section_is_the_one_this_module_generates() -> None:
    assert protocol_markdown() in README.read_text(), "regenerate it: python -m relay.messages"
