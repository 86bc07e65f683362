"""Product cards on the HLS timeline: each time a card is on screen becomes one EXT-X-DATERANGE.

Pure: card actions (with the media time they were stamped with) in, ``DateRange`` values out. A
``show`` opens a range, ``hide`` and ``delete`` close it at their media time, an ``update`` of a
card on screen closes its range and opens one with the new content at the same moment (a range's
attributes never change once published, as the spec requires of a given ID). Ranges still open
are always listed, however long ago they began, so a player that joins late knows what is on
screen; closed ones are listed while they end inside the playlist's window (players keep the
ones they have seen).

The card itself rides in ``X-CARD`` as base64url JSON (a quoted-string may hold neither quotes
nor commas safely), its id in ``X-CARD-ID``.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass

from relay.hls.playlist import DateRange

CARD_CLASS = "com.livecart.card"
KEEP_CLOSED = 200  # closed ranges remembered (those that ended in the window are listed)


@dataclass(frozen=True, slots=True)
class _Range:
    seq: int
    range_id: str
    card_id: str
    payload: str  # base64url of the card's JSON
    card_json: str
    start_ms: int
    end_ms: int | None = None


class CardRanges:
    """Owns one stream's card ranges: open ones by card id, and the recently closed ones."""

    def __init__(self, *, keep_closed: int = KEEP_CLOSED) -> None:
        self._keep_closed = keep_closed
        self._open: dict[str, _Range] = {}
        self._closed: list[_Range] = []

    def apply(self, seq: int, action: str, card_id: str, card_json: str, pts_ms: int) -> None:
        """One card event (``relay.cards`` event fields): ``show``, ``hide``, ``update``, ``delete``."""
        if action == "show":
            if card_id not in self._open:
                self._open[card_id] = _Range(seq, f"card-{seq}", card_id, _b64(card_json), card_json, pts_ms)
        elif action in ("hide", "delete"):
            self._close(card_id, pts_ms)
        elif action == "update" and card_id in self._open:
            self._close(card_id, pts_ms)
            self._open[card_id] = _Range(seq, f"card-{seq}", card_id, _b64(card_json), card_json, pts_ms)

    def _close(self, card_id: str, pts_ms: int) -> None:
        opened = self._open.pop(card_id, None)
        if opened is None:
            return
        end = max(pts_ms, opened.start_ms)
        self._closed.append(dataclasses.replace(opened, end_ms=end))
        del self._closed[: -self._keep_closed]

    def ranges(self, *, wall_at_zero: float, since_ms: int) -> list[DateRange]:
        """The tags for a playlist whose window starts at media time ``since_ms``, oldest first."""
        listed = [r for r in self._closed if r.end_ms is not None and r.end_ms >= since_ms]
        listed += sorted(self._open.values(), key=lambda r: r.start_ms)
        return [
            DateRange(
                r.range_id,
                CARD_CLASS,
                wall_at_zero + r.start_ms / 1000,
                None if r.end_ms is None else wall_at_zero + r.end_ms / 1000,
                (("X-CARD-ID", r.card_id), ("X-CARD", r.payload)),
            )
            for r in listed
        ]

    def on_screen(self) -> list[str]:
        return list(self._open)

    def showing(self) -> list[tuple[int, str, str]]:
        """(seq of its show, card id, card JSON) of every card on screen, oldest first."""
        return [(r.seq, r.card_id, r.card_json) for r in sorted(self._open.values(), key=lambda r: r.start_ms)]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
