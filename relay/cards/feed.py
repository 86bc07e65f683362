"""One stream's product cards at run time: apply host actions, persist, deliver to viewers.

The decisions live in ``CardBoard`` (pure); this class adds the clock, the rate limit, SQLite
(in one worker thread, off the loop) and delivery: every event is serialised once and handed
to every viewer's data channel and every SSE subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ingest.errors import LiveCartError
from relay.cards.board import CardBoard, CardEvent
from relay.cards.card import Card, parse_card
from relay.cards.orders import Order, apply_order
from relay.cards.store import CardStore
from relay.errors import TooManyRequests
from relay.messages import BadMessage, Clock, ErrorMessage, UpsertCard, encode, parse_card_action
from relay.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_CONTROL_MESSAGE = 4096  # a card action is at most 2 KiB of card plus its envelope
ORDERS_PER_S = 200  # orders reported per second per stream (each one is a card update to every viewer)
SSE_QUEUE_EVENTS = 256  # a subscriber further behind than this is cut off and resumes by id

# What an SSE subscriber's queue carries: card events, its viewer's clock (``?viewer=``), and
# None when it was cut off.
FeedItem = CardEvent | Clock | None


def offer(queue: asyncio.Queue[FeedItem], item: FeedItem) -> None:
    """Queue ``item`` for an SSE subscriber; one that cannot keep up is cut off (it resumes by id)."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        queue.get_nowait()
        queue.put_nowait(None)


class CardFeed:
    """Owns one stream's ``CardBoard``, its rate limiter and its SSE subscriber queues.

    ``pts_ms()`` gives the media time a card action is stamped with (just after the frame being
    sent now); ``deliver(json)`` sends one serialised event to every viewer's data channel;
    ``on_event`` (optional) gets every event.
    """

    def __init__(
        self,
        stream: str,
        board: CardBoard,
        *,
        store: CardStore | None,
        store_pool: ThreadPoolExecutor | None,
        pts_ms: Callable[[], int],
        deliver: Callable[[str], None],
        actions_per_s: float = 20.0,
        on_event: Callable[[CardEvent], None] | None = None,
    ) -> None:
        self.stream = stream
        self.board = board
        self._store = store
        self._pool = store_pool
        self._pts_ms = pts_ms
        self._deliver = deliver
        self._on_event = on_event  # another consumer of every event (the HLS timeline)
        self._limiter = RateLimiter(actions_per_s, int(actions_per_s))
        self._orders = RateLimiter(ORDERS_PER_S, ORDERS_PER_S)
        self._lock = asyncio.Lock()
        self.subscribers: set[asyncio.Queue[FeedItem]] = set()
        self.actions = 0

    async def upsert(self, card: Card) -> CardEvent:
        """Add a card to the catalogue or change it; viewers get an ``update`` event."""
        return await self._apply(lambda pts, now: self.board.upsert(card, pts_ms=pts, now=now))

    async def order(self, order: Order) -> CardEvent:
        """An order the shop reported: the card's stock down and sold count up, as an ``update``
        for every viewer. Orders have their own limit (a flash sale is not a host clicking)."""
        wait = self._orders.take(time.monotonic())
        if wait > 0:
            raise TooManyRequests(f"more than {ORDERS_PER_S} orders per second on stream {self.stream!r}", wait)
        async with self._lock:  # read, change and store the card as one step
            card = apply_order(self.board.card(order.card_id), order.quantity)
            event = self.board.upsert(card, pts_ms=self._pts_ms(), now=time.time())
            await self._persist(event)
            self._publish(event)
            return event

    async def act(self, action: Literal["show", "hide", "delete"], card_id: str) -> CardEvent:
        """Show, hide or delete a card of the catalogue."""
        change = {"show": self.board.show, "hide": self.board.hide, "delete": self.board.delete}[action]
        return await self._apply(lambda pts, now: change(card_id, pts_ms=pts, now=now))

    async def _apply(self, change: Callable[[int, float], CardEvent]) -> CardEvent:
        """Apply one host action and deliver its event to everyone, persisted first."""
        wait = self._limiter.take(time.monotonic())
        if wait > 0:
            raise TooManyRequests(f"more than 20 card actions per second on stream {self.stream!r}", wait)
        async with self._lock:  # one action at a time: the board and the store move together
            event = change(self._pts_ms(), time.time())
            await self._persist(event)
            self._publish(event)
            return event

    async def expire(self) -> None:
        """Hide cards whose ``ttl_s`` ran out (called about once a second)."""
        async with self._lock:
            for event in self.board.expire(time.time(), pts_ms=self._pts_ms()):
                await self._persist(event)
                self._publish(event)

    async def _persist(self, event: CardEvent) -> None:
        """Write the event and the board's state in the store's one worker thread (if stored)."""
        if self._store is not None and self._pool is not None:
            store = self._store
            await asyncio.get_running_loop().run_in_executor(self._pool, store.record, self.stream, event, self.board)

    def mirror(self, event: CardEvent) -> None:
        """An edge: deliver an event of the origin's board as it is (same seq and pts_ms)."""
        if self.board.mirror(event):
            self._publish(event)

    def mirror_snapshot(self, seq: int, on_screen: list[Card]) -> None:
        """An edge (re)connected to its origin: take its board's state; viewers that were here
        already get the new snapshot if it differs from what they have."""
        if self.board.mirror_snapshot(seq, on_screen, time.time()):
            self._deliver(self.board.snapshot_json())

    def _publish(self, event: CardEvent) -> None:
        self.actions += 1
        self._deliver(event.to_json())
        if self._on_event is not None:
            self._on_event(event)
        for queue in list(self.subscribers):
            offer(queue, event)

    async def handle_message(self, text: str | bytes) -> str:
        """A card action sent by a browser publisher on its WHIP data channel; returns the reply:
        the event (as viewers get it) or an ``error`` message (``relay.messages``)."""
        if isinstance(text, bytes) or len(text) > MAX_CONTROL_MESSAGE:
            return encode(ErrorMessage("send JSON text of at most 4 KiB"))
        try:
            action = parse_card_action(text)
            if isinstance(action, UpsertCard):
                event = await self.upsert(parse_card(action.card))
            else:
                event = await self.act(action.action, action.card_id)
        except BadMessage as exc:
            return encode(ErrorMessage(exc.reason, exc.status))
        except LiveCartError as exc:
            return encode(ErrorMessage(exc.reason, exc.status))
        return event.to_json()

    def subscribe(self) -> asyncio.Queue[FeedItem]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue(SSE_QUEUE_EVENTS)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[FeedItem]) -> None:
        self.subscribers.discard(queue)
