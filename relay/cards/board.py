"""One stream's card state machine (pure: no I/O, time passed in).

Actions in, events out: every action gets the next sequence number of its stream, and the board
keeps the catalogue, what is on screen (in show order), and a bounded history so a client that
reconnects can be sent exactly what it missed, or a snapshot when it missed too much.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ingest.errors import LiveCartError
from relay.cards.card import Card, card_to_dict
from relay.messages import CardAction, CardMessage, Snapshot, encode


class CardNotFound(LiveCartError):
    status = 404


class CatalogueFull(LiveCartError):
    status = 409


@dataclass(frozen=True, slots=True)
class CardEvent:
    """One applied action; ``json`` is its wire form (``relay.messages.CardMessage``), serialised once."""

    seq: int
    action: CardAction
    card: Card
    pts_ms: int
    sent_at: float
    json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        message = CardMessage(self.seq, self.action, card_to_dict(self.card), self.pts_ms, self.sent_at)
        object.__setattr__(self, "json", encode(message))

    def to_json(self) -> str:
        return self.json


class CardBoard:
    """Owns one stream's catalogue, on-screen list, sequence counter and event history."""

    def __init__(self, *, max_catalogue: int = 500, history: int = 1000) -> None:
        self.max_catalogue = max_catalogue
        self._catalogue: dict[str, Card] = {}
        self._on_screen: dict[str, float] = {}  # id -> when shown (ordered by show)
        self._history: deque[CardEvent] = deque(maxlen=history)
        self._seq = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def catalogue(self) -> list[Card]:
        return list(self._catalogue.values())

    def on_screen(self) -> list[Card]:
        return [self._catalogue[i] for i in self._on_screen]

    def on_screen_ids(self) -> list[str]:
        return list(self._on_screen)

    def shown_at(self, card_id: str) -> float | None:
        return self._on_screen.get(card_id)

    def history(self) -> list[CardEvent]:
        return list(self._history)

    def _event(self, action: CardAction, card: Card, pts_ms: int, now: float) -> CardEvent:
        self._seq += 1
        event = CardEvent(self._seq, action, card, pts_ms, now)
        self._history.append(event)
        return event

    def card(self, card_id: str) -> Card:
        """The catalogue's card ``card_id`` (CardNotFound, 404, when there is none)."""
        return self._get(card_id)

    def _get(self, card_id: str) -> Card:
        card = self._catalogue.get(card_id)
        if card is None:
            raise CardNotFound(f"no card {card_id!r} in this stream's catalogue")
        return card

    def upsert(self, card: Card, *, pts_ms: int, now: float) -> CardEvent:
        if card.id not in self._catalogue and len(self._catalogue) >= self.max_catalogue:
            raise CatalogueFull(f"the catalogue holds at most {self.max_catalogue} cards; delete some first")
        self._catalogue[card.id] = card
        return self._event("update", card, pts_ms, now)

    def show(self, card_id: str, *, pts_ms: int, now: float) -> CardEvent:
        card = self._get(card_id)
        self._on_screen.pop(card_id, None)
        self._on_screen[card_id] = now
        return self._event("show", card, pts_ms, now)

    def hide(self, card_id: str, *, pts_ms: int, now: float) -> CardEvent:
        """Hide a card; hiding one that is not on screen still emits an event (idempotent)."""
        card = self._get(card_id)
        self._on_screen.pop(card_id, None)
        return self._event("hide", card, pts_ms, now)

    def delete(self, card_id: str, *, pts_ms: int, now: float) -> CardEvent:
        card = self._get(card_id)
        self._on_screen.pop(card_id, None)
        del self._catalogue[card_id]
        return self._event("delete", card, pts_ms, now)

    def expire(self, now: float, *, pts_ms: int) -> list[CardEvent]:
        """Hide on-screen cards whose ttl_s has run out since they were shown."""
        due = [
            i
            for i, shown in self._on_screen.items()
            if (ttl := self._catalogue[i].ttl_s) is not None and now - shown >= ttl
        ]
        return [self.hide(i, pts_ms=pts_ms, now=now) for i in due]

    def snapshot(self) -> Snapshot:
        """What a late joiner needs: the cards on screen now and the last sequence number."""
        return Snapshot(self._seq, tuple(card_to_dict(c) for c in self.on_screen()))

    def snapshot_json(self) -> str:
        return encode(self.snapshot())

    def events_since(self, seq: int) -> list[CardEvent] | None:
        """Events after ``seq``, or None when the history no longer reaches back that far."""
        if seq >= self._seq:
            return [] if seq == self._seq else None
        if not self._history or self._history[0].seq > seq + 1:
            return None
        return [e for e in self._history if e.seq > seq]

    def mirror(self, event: CardEvent) -> bool:
        """Apply an event another board made (an edge mirrors its origin's board), keeping its
        sequence number, media time and send time. False for one already applied (an older or
        equal ``seq``): a resent event changes nothing."""
        if event.seq <= self._seq:
            return False
        card = event.card
        if event.action == "update":
            self._catalogue[card.id] = card
        elif event.action == "show":
            self._catalogue.setdefault(card.id, card)
            self._on_screen.pop(card.id, None)
            self._on_screen[card.id] = event.sent_at
        elif event.action == "hide":
            self._on_screen.pop(card.id, None)
        else:
            self._on_screen.pop(card.id, None)
            self._catalogue.pop(card.id, None)
        self._seq = event.seq
        self._history.append(event)
        return True

    def mirror_snapshot(self, seq: int, on_screen: list[Card], now: float) -> bool:
        """Take another board's snapshot as this one's state (an edge that (re)connects to its
        origin); True when it differs from what this board had (its viewers must be told)."""
        changed = seq != self._seq or [c.id for c in on_screen] != list(self._on_screen)
        for card in on_screen:
            self._catalogue[card.id] = card
        self._on_screen = {c.id: self._on_screen.get(c.id, now) for c in on_screen}
        if seq != self._seq:
            self._history.clear()  # events this board never saw cannot be replayed from it
        self._seq = seq
        return changed

    def restore(
        self, catalogue: list[Card], on_screen: list[tuple[str, float]], seq: int, history: list[CardEvent]
    ) -> None:
        """Load saved state (used at start, from storage)."""
        self._catalogue = {c.id: c for c in catalogue}
        self._on_screen = {i: t for i, t in on_screen if i in self._catalogue}
        self._seq = seq
        self._history.clear()
        self._history.extend(history)
