"""Orders the shop reports (pure): what a valid order is, what it does to a card's stock and sold
count, and the gate that keeps "Ann just bought ..." notices readable."""

from __future__ import annotations

import dataclasses
import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.cards.card import Card, CardInvalid
from relay.cards.orders import Order, OutOfStock, apply_order, parse_order
from relay.talk.display import NoticeGate

SCARF = Card("scarf", "Silk scarf", "49.00", "EUR", "/img/scarf.jpg", "https://shop.example/scarf")


def test_a_valid_order_parses_with_its_defaults() -> None:
    assert parse_order(b'{"card_id": "scarf"}') == Order("scarf", 1, None)
    assert parse_order(json.dumps({"card_id": "scarf", "quantity": 3, "buyer": " Ann "}).encode()) == Order(
        "scarf", 3, "Ann"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[]", "body"),
        (b"\xff", "body"),
        (b"{}", "card_id"),
        (b'{"card_id": "no spaces"}', "card_id"),
        (b'{"card_id": "scarf", "quantity": 0}', "quantity"),
        (b'{"card_id": "scarf", "quantity": 1001}', "quantity"),
        (b'{"card_id": "scarf", "quantity": true}', "quantity"),
        (b'{"card_id": "scarf", "buyer": ""}', "buyer"),
        (b'{"card_id": "scarf", "buyer": "a\\u0000b"}', "buyer"),
        (b'{"card_id": "scarf", "price": "1"}', "price"),
        (b'{"card_id": "' + b"x" * 2000 + b'"}', "body"),
    ],
)
def test_a_bad_order_is_refused_naming_its_field(body: bytes, field: str) -> None:
    with pytest.raises(CardInvalid) as refused:
        parse_order(body)
    assert refused.value.field == field


@given(st.one_of(st.none(), st.integers(0, 50)), st.one_of(st.none(), st.integers(0, 1000)), st.integers(1, 60))
def test_an_order_counts_stock_down_and_sold_up_or_changes_nothing(
    stock: int | None, sold: int | None, quantity: int
) -> None:
    card = dataclasses.replace(SCARF, stock=stock, sold=sold)
    if stock is not None and quantity > stock:
        with pytest.raises(OutOfStock, match="sold out" if stock == 0 else f"only {stock} left"):
            apply_order(card, quantity)
        return
    after = apply_order(card, quantity)
    assert after.stock == (None if stock is None else stock - quantity)
    assert after.stock is None or after.stock >= 0
    assert after.sold == (sold or 0) + quantity
    assert (after.id, after.title, after.price) == (card.id, card.title, card.price)


@given(st.lists(st.floats(0, 10), max_size=40), st.floats(0.5, 3))
def test_the_notice_gate_lets_one_through_per_interval(offsets: list[float], interval: float) -> None:
    gate = NoticeGate(interval)
    times, now = [], 0.0
    for step in offsets:
        now += step
        if gate.allow(now):
            times.append(now)
    assert all(b - a >= interval for a, b in pairwise(times))
    assert len(times) + gate.skipped == len(offsets)
    assert bool(offsets) == bool(times)  # the first one always goes through
