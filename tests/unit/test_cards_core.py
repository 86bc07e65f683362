"""Card validation, the CardBoard state machine, the rate limiter and SQLite round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cards.board import CardBoard, CardNotFound, CatalogueFull
from relay.cards.card import Card, CardBodyTooLarge, CardInvalid, card_to_dict, parse_card, parse_card_body
from relay.cards.store import CardStore
from relay.messages import Snapshot
from relay.ratelimit import RateLimiter


def raw(**extra: object) -> dict[str, object]:
    return {
        "id": "sku-1",
        "title": "Red mug",
        "price": "12.50",
        "currency": "EUR",
        "image_url": "/img/mug.jpg",
        "buy_url": "https://shop.example/mug",
        **extra,
    }


def card(n: int, ttl: float | None = None) -> Card:
    return parse_card(raw(id=f"c{n}", ttl_s=ttl) if ttl else raw(id=f"c{n}"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"title": ""}, "title"),
        ({"title": "t" * 121}, "title"),
        ({"title": "a\u0000b"}, "title"),
        ({"title": 5}, "title"),
        ({"price": "1e3"}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": 12.5}, "price"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"buy_url": "//evil.example/x"}, "buy_url"),
        ({"buy_url": "ftp://x/y"}, "buy_url"),
        ({"buy_url": "https://a b"}, "buy_url"),
        ({"stock": -1}, "stock"),
        ({"stock": True}, "stock"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"badge": "b" * 33}, "badge"),
        ({"extra": 1}, "extra"),
    ],
)
def test_each_bad_field_is_named_with_422(change: dict[str, object], field: str) -> None:
    with pytest.raises(CardInvalid) as info:
        parse_card(raw(**change))
    assert info.value.field == field and info.value.status == 422 and field in info.value.reason


def test_missing_fields_and_bodies() -> None:
    body = raw()
    del body["price"]
    with pytest.raises(CardInvalid, match="price"):
        parse_card(body)
    with pytest.raises(CardInvalid, match="body"):
        parse_card([1, 2])
    with pytest.raises(CardInvalid, match="body"):
        parse_card_body(b"{nope")
    with pytest.raises(CardBodyTooLarge):
        parse_card_body(json.dumps(raw(subtitle="s" * 2100)).encode())


def test_valid_cards_round_trip() -> None:
    full = parse_card(raw(subtitle="Stoneware", badge="-20%", stock=3, ttl_s=30))
    assert parse_card(card_to_dict(full)) == full
    assert "stock" not in card_to_dict(parse_card(raw()))


def test_board_events_snapshot_and_errors() -> None:
    board = CardBoard(max_catalogue=2)
    events = [board.upsert(card(1), pts_ms=10, now=1.0), board.show("c1", pts_ms=20, now=2.0)]
    assert [e.seq for e in events] == [1, 2]
    assert events[1].to_json() is events[1].to_json()
    assert json.loads(events[1].to_json())["action"] == "show"
    assert board.snapshot() == Snapshot(2, (card_to_dict(card(1)),))
    assert json.loads(board.snapshot_json()) == {"type": "snapshot", "seq": 2, "cards": [card_to_dict(card(1))]}
    board.upsert(card(2), pts_ms=30, now=3.0)
    with pytest.raises(CatalogueFull):
        board.upsert(card(3), pts_ms=40, now=4.0)
    with pytest.raises(CardNotFound):
        board.show("nope", pts_ms=0, now=0)
    board.delete("c1", pts_ms=50, now=5.0)
    assert board.on_screen() == [] and [c.id for c in board.catalogue()] == ["c2"]


def test_ttl_expiry_hides_the_card() -> None:
    board = CardBoard()
    board.upsert(card(1, ttl=5), pts_ms=0, now=0.0)
    board.show("c1", pts_ms=0, now=10.0)
    assert board.expire(14.9, pts_ms=1) == []
    [hidden] = board.expire(15.0, pts_ms=2)
    assert hidden.action == "hide" and board.on_screen() == []


actions = st.lists(st.tuples(st.sampled_from(["upsert", "show", "hide", "delete"]), st.integers(0, 4)), max_size=60)


def _apply(board: CardBoard, steps: list[tuple[str, int]]) -> None:
    for i, (action, n) in enumerate(steps):
        try:
            if action == "upsert":
                board.upsert(card(n), pts_ms=i, now=float(i))
            else:
                getattr(board, action)(f"c{n}", pts_ms=i, now=float(i))
        except CardNotFound:
            pass


@settings(max_examples=150)
@given(actions, actions)
def test_snapshot_plus_later_events_equals_the_live_state(
    before: list[tuple[str, int]], after: list[tuple[str, int]]
) -> None:
    board = CardBoard()
    _apply(board, before)
    snapshot = board.snapshot()
    _apply(board, after)
    missed = board.events_since(snapshot.seq)
    assert missed is not None
    assert [e.seq for e in missed] == list(range(snapshot.seq + 1, board.last_seq + 1))
    screen = [c["id"] for c in snapshot.cards]
    for event in missed:  # what a late joiner does with the snapshot and the events after it
        if event.action in ("show", "hide", "delete") and event.card.id in screen:
            screen.remove(event.card.id)
        if event.action == "show":
            screen.append(event.card.id)  # an "update" changes the card where it is
    assert screen == [c.id for c in board.on_screen()]


def test_rate_limiter_bursts_then_paces() -> None:
    limiter = RateLimiter(20, 20)
    assert all(limiter.take(0.0) == 0.0 for _ in range(20))
    wait = limiter.take(0.0)
    assert 0 < wait <= 0.05 + 1e-9
    assert limiter.take(0.05) == 0.0


def test_store_round_trip_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cards.sqlite3"
    store = CardStore(path)
    board = store.load("s", max_catalogue=10, history=100)
    for event in (
        board.upsert(card(1), pts_ms=1, now=1.0),
        board.upsert(card(2), pts_ms=2, now=2.0),
        board.show("c2", pts_ms=3, now=3.0),
        board.show("c1", pts_ms=4, now=4.0),
    ):
        store.record("s", event, board)
    store.close()
    again = CardStore(path).load("s", max_catalogue=10, history=100)
    assert again.snapshot() == board.snapshot()
    assert again.catalogue() == board.catalogue()
    assert [e.to_json() for e in again.events_since(1) or []] == [e.to_json() for e in board.events_since(1) or []]
    assert CardStore(path).load("other", max_catalogue=10, history=100).last_seq == 0
