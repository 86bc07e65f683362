"""Shop analytics of one live session (pure: every call takes ``now``, monotonic seconds).

What a shop asks after a session: how many watched (now, peak, time-weighted average, joins,
total watch time), and per product card how many viewers saw it on screen (impressions: the
viewers watching when it was shown plus those who joined while it was up), how many clicked
Buy (clicks, and distinct clickers for the click-through rate), and how long it was on screen;
plus comments, likes and viewers minute by minute. Counts only, no per-viewer history: memory
stays bounded by the cards and the minutes, whatever the audience.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTES_KEPT = 24 * 60  # the timeline keeps the last day, minute by minute
MAX_CLICKERS = 100_000  # distinct clickers remembered per card (beyond, clicks still count)


@dataclass(slots=True)
class CardStats:
    title: str
    impressions: int = 0
    clicks: int = 0
    clickers: set[str] = field(default_factory=set)
    on_screen_s: float = 0.0
    shown_at: float | None = None  # while on screen


@dataclass(slots=True)
class Minute:
    comments: int = 0
    likes: int = 0
    orders: int = 0
    viewers_peak: int = 0


class SessionStats:
    """Counts of one stream's session since ``started``."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.viewers = 0
        self.peak = 0
        self.joins = 0
        self.watch_s = 0.0  # the integral of the viewer count over time
        self._at = started  # when ``watch_s`` was last brought up to date
        self.cards: dict[str, CardStats] = {}
        self.minutes: dict[int, Minute] = {}
        self.comments = 0
        self.likes = 0
        self.orders = 0
        self._remote: dict[str, int] = {}  # viewers on other nodes, by the pull that reported them

    def _advance(self, now: float) -> None:
        if now > self._at:
            self.watch_s += self.viewers * (now - self._at)
            self._at = now

    def _minute(self, now: float) -> Minute:
        index = max(0, int((now - self.started) // 60))
        minute = self.minutes.get(index)
        if minute is None:
            minute = self.minutes[index] = Minute(viewers_peak=self.viewers)
            for old in [i for i in self.minutes if i <= index - MINUTES_KEPT]:
                del self.minutes[old]
        return minute

    # ---- viewers ----------------------------------------------------------------------------
    def joined(self, now: float) -> None:
        self._advance(now)
        self.viewers += 1
        self.joins += 1
        self.peak = max(self.peak, self.viewers)
        minute = self._minute(now)
        minute.viewers_peak = max(minute.viewers_peak, self.viewers)
        for card in self.cards.values():
            if card.shown_at is not None:
                card.impressions += 1

    def left(self, now: float) -> None:
        self._advance(now)
        self.viewers = max(0, self.viewers - 1)

    def remote(self, source: str, viewers: int, joins: int, now: float) -> None:
        """Another node's viewers of this stream (an edge's, through its pull): ``viewers`` there
        now and ``joins`` since its last report. A source seen for the first time may have
        viewers beyond its joins (its pull was made again): they are present, not new joins."""
        for _ in range(joins):
            self.joined(now)
        self._advance(now)
        before = self._remote.get(source, 0) + joins
        self._remote[source] = viewers
        self.viewers = max(0, self.viewers + viewers - before)
        self.peak = max(self.peak, self.viewers)
        minute = self._minute(now)
        minute.viewers_peak = max(minute.viewers_peak, self.viewers)

    def remote_gone(self, source: str, now: float) -> None:
        """That node's pull ended: its viewers are no longer counted."""
        self._advance(now)
        self.viewers = max(0, self.viewers - self._remote.pop(source, 0))

    # ---- cards ------------------------------------------------------------------------------
    def card_shown(self, card_id: str, title: str, now: float) -> None:
        card = self.cards.get(card_id)
        if card is None:
            card = self.cards[card_id] = CardStats(title)
        card.title = title
        if card.shown_at is None:
            card.shown_at = now
            card.impressions += self.viewers

    def card_hidden(self, card_id: str, now: float) -> None:
        card = self.cards.get(card_id)
        if card is not None and card.shown_at is not None:
            card.on_screen_s += max(0.0, now - card.shown_at)
            card.shown_at = None

    def click(self, viewer_id: str, card_id: str, now: float) -> bool:
        """A viewer clicked Buy on ``card_id``; False (not counted) for a card never shown."""
        card = self.cards.get(card_id)
        if card is None:
            return False
        card.clicks += 1
        if len(card.clickers) < MAX_CLICKERS:
            card.clickers.add(viewer_id)
        return True

    # ---- the conversation and orders ------------------------------------------------------
    def commented(self, count: int, now: float) -> None:
        self.comments += count
        self._minute(now).comments += count

    def liked(self, count: int, now: float) -> None:
        self.likes += count
        self._minute(now).likes += count

    def ordered(self, quantity: int, now: float) -> None:
        self.orders += quantity
        self._minute(now).orders += quantity

    def carried_over(self, now: float) -> SessionStats:
        """A new session's counts, starting ``now`` with the viewers still here (as its first
        joins) and the cards still on screen (shown to them)."""
        new = SessionStats(now)
        new._remote = dict(self._remote)
        new.viewers = new.peak = new.joins = self.viewers
        new._minute(now).viewers_peak = self.viewers
        for card_id, card in self.cards.items():
            if card.shown_at is not None:
                new.cards[card_id] = CardStats(card.title, impressions=self.viewers, shown_at=now)
        return new

    # ---- the report -------------------------------------------------------------------------
    def report(self, now: float) -> dict[str, object]:
        self._advance(now)
        elapsed = max(0.0, now - self.started)
        cards = []
        for card_id, card in self.cards.items():
            on_screen = card.on_screen_s + (max(0.0, now - card.shown_at) if card.shown_at is not None else 0.0)
            cards.append(
                {
                    "id": card_id,
                    "title": card.title,
                    "impressions": card.impressions,
                    "clicks": card.clicks,
                    "clickers": len(card.clickers),
                    # Distinct clickers over impressions (a stale page may click a card it saw
                    # before a reconnect, so it is capped at 1).
                    "ctr": round(min(1.0, len(card.clickers) / card.impressions), 4) if card.impressions else 0.0,
                    "on_screen_s": round(on_screen, 1),
                }
            )
        return {
            "elapsed_s": round(elapsed, 1),
            "viewers": {
                "now": self.viewers,
                "peak": self.peak,
                "average": round(self.watch_s / elapsed, 2) if elapsed > 0 else float(self.viewers),
                "joins": self.joins,
                "watch_time_s": round(self.watch_s, 1),
            },
            "comments": self.comments,
            "likes": self.likes,
            "orders": self.orders,
            "cards": cards,
            "timeline": [
                {
                    "minute": i,
                    "comments": m.comments,
                    "likes": m.likes,
                    "orders": m.orders,
                    "viewers_peak": m.viewers_peak,
                }
                for i, m in sorted(self.minutes.items())
            ],
        }


SESSION_GAP_S = 300.0  # offline this long ends a session: the next go-live starts a new one
PAST_SESSIONS = 10  # ended sessions' reports kept per stream


class Sessions:
    """A stream's analytics, session by session (pure: ``now`` passed in, monotonic seconds).

    A session starts when the stream goes live for the first time, or again after being offline
    for ``gap_s`` or more; a publisher that comes back sooner (OBS after a network blip, a phone
    switching networks) continues the session it left. An ended session's report is the one it
    had when the stream went offline; the last ``PAST_SESSIONS`` are kept. Viewers still
    connected when a new session starts (waiting on the offline page) are its first joins, and
    cards still on screen are shown to them.
    """

    def __init__(self, now: float, gap_s: float = SESSION_GAP_S) -> None:
        self.gap_s = gap_s
        self.current = SessionStats(now)
        self.number = 0  # 0 until the stream first goes live
        self.past: list[dict[str, object]] = []  # newest first
        self._offline: tuple[float, dict[str, object]] | None = None  # since when, and the report then
        self._live = False

    def went_live(self, now: float) -> bool:
        """The stream is live: True when that starts a new session."""
        if self._live:
            return False
        self._live = True
        offline, self._offline = self._offline, None
        if self.number and offline is not None and now - offline[0] < self.gap_s:
            return False  # back in time: the same session goes on
        if self.number and offline is not None:
            self.past.insert(0, {"session": self.number, "live": False, **offline[1]})
            del self.past[PAST_SESSIONS:]
        self.current = self.current.carried_over(now)
        self.number += 1
        return True

    def went_offline(self, now: float) -> None:
        if self._live:
            self._live = False
            self._offline = (now, self.current.report(now))

    def report(self, now: float) -> dict[str, object]:
        return {"session": self.number, "live": self._live, **self.current.report(now), "previous": self.past}
