"""Orders the shop reports, and what they do to a card (pure: no I/O).

The shop's backend reports each order (``POST /api/streams/{stream}/orders``); the card's
``stock`` counts down and its ``sold`` count up, and viewers see a sampled "Ann just bought ..."
notice (``relay.talk.display.NoticeGate``). An order for more than is left is refused (409) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ingest.errors import LiveCartError
from relay.cards.card import CONTROL, ID, Card, CardInvalid

MAX_ORDER_BYTES = 1024
MAX_QUANTITY = 1000


class OutOfStock(LiveCartError):
    """The order is for more than the card has left."""

    status = 409


@dataclass(frozen=True, slots=True)
class Order:
    card_id: str
    quantity: int = 1
    buyer: str | None = None  # the display name viewers see ("Ann"); None: "Someone"


def parse_order(raw: bytes) -> Order:
    """Validate a JSON order body; raise CardInvalid (422) naming the first bad field."""
    if len(raw) > MAX_ORDER_BYTES:
        raise CardInvalid("body", f"an order is at most {MAX_ORDER_BYTES} bytes")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CardInvalid("body", "is not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise CardInvalid("body", "must be a JSON object")
    for key in obj:
        if key not in ("card_id", "quantity", "buyer"):
            raise CardInvalid(str(key)[:40], "is not an order field")
    card_id = obj.get("card_id")
    if not isinstance(card_id, str) or not ID.match(card_id):
        raise CardInvalid("card_id", "must name a card: letters, digits and _ . : -, at most 64")
    quantity = obj.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= MAX_QUANTITY:
        raise CardInvalid("quantity", f"must be a whole number from 1 to {MAX_QUANTITY}")
    buyer = obj.get("buyer")
    if buyer is not None:
        if not isinstance(buyer, str) or not buyer.strip() or len(buyer) > 40 or CONTROL.search(buyer):
            raise CardInvalid("buyer", "must be a display name of 1 to 40 characters without control characters")
        buyer = buyer.strip()
    return Order(card_id, quantity, buyer)


def apply_order(card: Card, quantity: int) -> Card:
    """The card after an order of ``quantity``: stock down (when it is counted), sold up."""
    if card.stock is not None and quantity > card.stock:
        left = "it is sold out" if card.stock == 0 else f"only {card.stock} left"
        raise OutOfStock(f"card {card.id!r}: an order of {quantity}, but {left}")
    stock = None if card.stock is None else card.stock - quantity
    return dataclasses.replace(card, stock=stock, sold=(card.sold or 0) + quantity)
