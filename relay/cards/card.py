"""The product card value and its strict validation (pure: no I/O).

A card is what a host shows over the video: a product with its price and a buy link. Every
field is checked; anything unknown, missing, oversize or of the wrong type is refused with a
422 that names the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ingest.errors import LiveCartError

MAX_MESSAGE_BYTES = 2048
ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PRICE = re.compile(r"^\d{1,12}(\.\d{1,4})?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
CURRENCIES = frozenset(
    "USD EUR GBP CNY JPY HKD TWD KRW SGD INR AUD CAD CHF SEK NOK DKK PLN BRL MXN IDR THB VND MYR PHP "
    "TRY ZAR AED SAR RUB NZD ILS CZK HUF RON BGN CLP COP PEN ARS EGP NGN KES PKR BDT UAH QAR KWD".split()
)
REQUIRED = ("id", "title", "price", "currency", "image_url", "buy_url")
OPTIONAL = ("subtitle", "badge", "stock", "sold", "ttl_s")


class CardInvalid(LiveCartError):
    """A card field is wrong; ``field`` names it."""

    status = 422

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"card field {field!r}: {problem}")
        self.field = field


class CardBodyTooLarge(LiveCartError):
    """A card message over 2 KiB."""

    status = 413


@dataclass(frozen=True, slots=True)
class Card:
    """One product as viewers see it."""

    id: str
    title: str
    price: str
    currency: str
    image_url: str
    buy_url: str
    subtitle: str | None = None
    badge: str | None = None
    stock: int | None = None
    sold: int | None = None  # counted up by the orders the shop reports (relay/cards/orders.py)
    ttl_s: float | None = None


def _text(obj: dict[str, Any], field: str, limit: int) -> str:
    value = obj[field]
    if not isinstance(value, str):
        raise CardInvalid(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise CardInvalid(field, "must not be empty")
    if len(value) > limit:
        raise CardInvalid(field, f"must be at most {limit} characters, got {len(value)}")
    if CONTROL.search(value):
        raise CardInvalid(field, "must not contain control characters")
    return value


def _url(obj: dict[str, Any], field: str) -> str:
    value = _text(obj, field, 2048)
    if re.search(r"\s", value):
        raise CardInvalid(field, "must not contain whitespace")
    if value.startswith("/") and not value.startswith("//"):
        return value
    if re.match(r"^https?://[^/?#\s]+", value, re.IGNORECASE):
        return value
    raise CardInvalid(field, "must be an http(s) URL or a site-relative path starting with '/'")


def parse_card(obj: object, *, card_id: str | None = None) -> Card:
    """Validate decoded JSON into a Card; raise CardInvalid naming the first bad field."""
    if not isinstance(obj, dict):
        raise CardInvalid("body", "must be a JSON object")
    for key in obj:
        if key not in REQUIRED and key not in OPTIONAL:
            raise CardInvalid(str(key)[:40], "is not a card field")
    if card_id is not None and "id" not in obj:
        obj = {**obj, "id": card_id}
    missing = [f for f in REQUIRED if f not in obj]
    if missing:
        raise CardInvalid(missing[0], "is required")
    ident = _text(obj, "id", 64)
    if not ID.match(ident):
        raise CardInvalid("id", "may use only letters, digits and _ . : -")
    if card_id is not None and ident != card_id:
        raise CardInvalid("id", f"is {ident!r} but the URL names {card_id!r}")
    price = _text(obj, "price", 17)
    if not PRICE.match(price):
        raise CardInvalid("price", "must be a decimal string like '19.99'")
    currency = _text(obj, "currency", 3)
    if currency not in CURRENCIES:
        raise CardInvalid("currency", "must be an ISO 4217 code such as EUR, USD or CNY")
    stock = obj.get("stock")
    if stock is not None and (not isinstance(stock, int) or isinstance(stock, bool) or not 0 <= stock <= 10_000_000):
        raise CardInvalid("stock", "must be a whole number from 0 to 10000000")
    sold = obj.get("sold")
    if sold is not None and (not isinstance(sold, int) or isinstance(sold, bool) or not 0 <= sold <= 10**9):
        raise CardInvalid("sold", "must be a whole number from 0 to 1000000000")
    ttl = obj.get("ttl_s")
    if ttl is not None:
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 < ttl <= 86400:
            raise CardInvalid("ttl_s", "must be a number of seconds above 0 and at most 86400")
        ttl = float(ttl)
    return Card(
        id=ident,
        title=_text(obj, "title", 120),
        price=price,
        currency=currency,
        image_url=_url(obj, "image_url"),
        buy_url=_url(obj, "buy_url"),
        subtitle=_text(obj, "subtitle", 200) if obj.get("subtitle") is not None else None,
        badge=_text(obj, "badge", 32) if obj.get("badge") is not None else None,
        stock=stock,
        sold=sold,
        ttl_s=ttl,
    )


def parse_card_body(raw: bytes) -> Card:
    """Parse a raw JSON request body (at most 2 KiB) into a Card."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise CardBodyTooLarge(f"card body of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CardInvalid("body", "is not valid UTF-8 JSON") from None
    return parse_card(obj)


def card_to_dict(card: Card) -> dict[str, object]:
    """The card as JSON-ready data, optional fields left out when unset."""
    out: dict[str, object] = {f: getattr(card, f) for f in REQUIRED}
    for f in OPTIONAL:
        value = getattr(card, f)
        if value is not None:
            out[f] = value
    return out


def card_json(card: Card) -> str:
    """The card as compact JSON (what its ``card`` field carries in events), e.g. for HLS metadata."""
    return json.dumps(card_to_dict(card), separators=(",", ":"), ensure_ascii=False)
