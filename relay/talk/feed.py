"""One stream's conversation at run time: comments in, the host's full feed and the viewers'
sampled display out, likes counted and broadcast, moderation applied, everything stored.

The decisions are pure (``CommentPolicy``, ``DisplaySampler``, ``LikeTally``, ``review.verdict``);
this class adds the clock, one ticker task (started by ``start``, stopped by ``close``) that
paces the display, the like totals and the batched writes, the host console's subscriber
queues, and, when the stream has a review endpoint, one task per comment under review (at most
``MAX_REVIEWS`` at once; more are refused with 503 rather than queued).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from relay.errors import SessionNotFound
from relay.identity import MAX_NAME, ROLES, Identity
from relay.messages import (
    Bans,
    CommentMessage,
    CommentPinned,
    CommentRemoved,
    EdgeTalk,
    ErrorMessage,
    LikeTotals,
    OrderNotice,
    encode,
    encode_bans,
    encode_batch,
    encode_together,
)
from relay.talk.comments import Comment, CommentPolicy, CommentRefused, CommentRules
from relay.talk.display import DisplaySampler, NoticeGate, priority
from relay.talk.likes import LikeTally
from relay.talk.reviewer import Reviewer
from relay.talk.store import TalkStore

log = logging.getLogger(__name__)

TICK_S = 0.1
DISPLAY_BATCH_S = 1.0  # viewers get the display stream's comments and the like totals in one message this often
HOST_QUEUE_EVENTS = 1024  # a host console further behind than this is cut off (it reconnects)
RECENT = 200  # comments kept in memory for the host console's first page
ORDER_NOTICE_S = 2.0  # at most one "Ann just bought ..." to viewers this often
MAX_REVIEWS = 256  # comments waiting for the shop's review at once; more are refused (503)


def comment_message(comment: Comment, *, mine: bool = False) -> CommentMessage:
    return CommentMessage(comment.id, comment.name, comment.role, comment.text, comment.pts_ms, comment.at, mine)


def comment_json(comment: Comment, *, mine: bool = False) -> str:
    return encode(comment_message(comment, mine=mine))


class TalkFeed:
    """Owns one stream's chat policy, display sampler, like tally, host queues and ticker."""

    def __init__(
        self,
        stream: str,
        rules: CommentRules,
        *,
        store: TalkStore | None,
        store_pool: ThreadPoolExecutor | None,
        pts_ms: Callable[[], int],
        broadcast: Callable[[str], None],
        on_screen_titles: Callable[[], list[str]],
        display_per_s: int = 10,
        reviewer: Reviewer | None = None,
        tell_nodes: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream
        self._tell_nodes = tell_nodes  # the edges pulling this stream hear of bans
        self.policy = CommentPolicy(rules)
        self.display = DisplaySampler(display_per_s)
        self.likes = LikeTally()
        self.notices = NoticeGate(ORDER_NOTICE_S)
        self._display_at = 0.0  # when the display stream next sends (wall clock)
        self._store = store
        self._pool = store_pool
        self._pts_ms = pts_ms
        self._broadcast = broadcast
        self._titles = on_screen_titles
        self.recent: deque[Comment] = deque(maxlen=RECENT)
        self._unsaved: list[Comment] = []
        self._actions: list[tuple[float, str, str | None, int | None]] = []
        self.hosts: set[asyncio.Queue[str | None]] = set()
        self.pinned: str | None = None  # the comment_pinned message while a comment is pinned
        self.pinned_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.reviewer = reviewer
        self._reviews: set[asyncio.Task[None]] = set()

    def restore(self, last_id: int, likes: int, gifts: dict[str, int], banned: set[str]) -> None:
        self.policy.restore_ids(last_id)
        self.likes.total = likes
        self.likes.gifts = dict(gifts)
        self.policy.banned |= banned

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._tick(), name=f"talk {self.stream}")

    async def close(self) -> None:
        tasks = [*self._reviews, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.reviewer is not None:
            await self.reviewer.close()
        await self._save()

    # ---- comments and likes -------------------------------------------------------------------
    def post(self, who: Identity, text: object, echo: Callable[[str], None] | None = None) -> None:
        """Take a comment from a data channel (or raise ``CommentRefused``): the host gets it at
        once, its author an echo, viewers a sampled display on the next ticks. Under review, the
        author hears later: the echo, or the refusal as an error message."""
        comment = self._check(who, text)
        if self.reviewer is None:
            self._publish(comment, echo)
            return
        task = asyncio.get_running_loop().create_task(self._review_then_publish(comment, echo))
        self._reviews.add(task)
        task.add_done_callback(self._reviews.discard)

    async def submit(self, who: Identity, text: object) -> Comment:
        """Take a comment from HTTP: returns it once it is shown, or raises ``CommentRefused``."""
        comment = self._check(who, text)
        if self.reviewer is not None:
            await self._reviewed(comment)
        self._publish(comment, None)
        return comment

    def _check(self, who: Identity, text: object) -> Comment:
        if self.reviewer is not None and len(self._reviews) >= MAX_REVIEWS and who.role == "viewer":
            self.policy.refused["review_busy"] = self.policy.refused.get("review_busy", 0) + 1
            raise CommentRefused("too many comments are waiting for review; try again in a moment", 503, 1.0)
        return self.policy.check(who, text, now=time.time(), pts_ms=self._pts_ms())

    async def _reviewed(self, comment: Comment) -> None:
        assert self.reviewer is not None
        result = await self.reviewer.review(comment)
        if not result.allowed:
            kind = "review_down" if result.failed else "review"
            self.policy.refused[kind] = self.policy.refused.get(kind, 0) + 1
            self.policy.accepted -= 1
            raise CommentRefused(result.reason, result.status, 1.0 if result.status == 503 else None)

    async def _review_then_publish(self, comment: Comment, echo: Callable[[str], None] | None) -> None:
        try:
            await self._reviewed(comment)
        except CommentRefused as exc:
            if echo is not None:
                echo(encode(ErrorMessage(exc.reason, exc.status)))
            return
        self._publish(comment, echo)

    def _publish(self, comment: Comment, echo: Callable[[str], None] | None) -> None:
        self.recent.append(comment)
        self._unsaved.append(comment)
        self._to_hosts(comment_json(comment))
        if echo is not None:
            echo(comment_json(comment, mine=True))
        self.display.offer(comment, priority(comment, self._titles()))

    def like(self, count: object, gift: object = None) -> None:
        self.likes.add(count, gift)  # raises LikeRefused; broadcast on a tick

    def from_edge(self, talk: EdgeTalk, reply: Callable[[list[tuple[str, str]]], None]) -> None:
        """An edge's viewers' comments and likes (``relay.talk.forward``), taken as this node's own
        viewers' are; ``reply`` gets each comment's echo or refusal for the edge to pass on, those
        decided now in one call, those under review later, one by one."""
        now_items: list[tuple[str, str]] = []
        deciding = True

        def answer_to(ref: str) -> Callable[[str], None]:
            def answer(message: str) -> None:
                if deciding:
                    now_items.append((ref, message))
                else:
                    reply([(ref, message)])

            return answer

        for item in talk.comments:
            role = item.role if item.role in ROLES else "viewer"
            who = Identity(item.sub, item.name[:MAX_NAME], role, item.guest)
            try:
                self.post(who, item.text, echo=answer_to(item.ref))
            except CommentRefused as exc:
                now_items.append((item.ref, encode(ErrorMessage(exc.reason, exc.status))))
        self.likes.add_sums(talk.likes, talk.gifts)
        deciding = False
        if now_items:
            reply(now_items)

    # ---- moderation -----------------------------------------------------------------------------
    def pin(self, comment_id: int | None) -> None:
        """Pin a recent comment above the comments for every viewer (None: unpin)."""
        comment = None
        if comment_id is not None:
            comment = next((c for c in self.recent if c.id == comment_id), None)
            if comment is None:
                raise SessionNotFound(f"no recent comment {comment_id} on stream {self.stream!r}")
        message = encode(CommentPinned(None if comment is None else comment_message(comment)))
        self.pinned, self.pinned_id = (None, None) if comment is None else (message, comment.id)
        self._broadcast(message)
        self._to_hosts(message)

    def unpin(self, comment_id: int) -> None:
        if self.pinned_id != comment_id:
            raise SessionNotFound(f"comment {comment_id} is not pinned on stream {self.stream!r}")
        self.pin(None)

    def mirror_pinned(self, message: str, comment_id: int | None) -> None:
        """An edge: the origin's pin, kept for the viewers that join here while it holds (the
        message itself reaches this edge's viewers and edges as every broadcast does)."""
        self.pinned, self.pinned_id = (None, None) if comment_id is None else (message, comment_id)

    def delete(self, comment_id: int) -> None:
        if not any(c.id == comment_id for c in self.recent):
            raise SessionNotFound(f"no recent comment {comment_id} on stream {self.stream!r}")
        if self.pinned_id == comment_id:
            self.pin(None)
        self.recent = deque((c for c in self.recent if c.id != comment_id), maxlen=RECENT)
        self.display.remove(comment_id)
        self._actions.append((time.time(), "delete", None, comment_id))
        message = encode(CommentRemoved(comment_id))
        self._broadcast(message)
        self._to_hosts(message)

    def ban(self, sub: str) -> None:
        self.policy.ban(sub)
        self._actions.append((time.time(), "ban", sub, None))
        self._tell(sub, banned=True)

    def unban(self, sub: str) -> None:
        self.policy.unban(sub)
        self._actions.append((time.time(), "unban", sub, None))
        self._tell(sub, banned=False)

    def _tell(self, sub: str, *, banned: bool) -> None:
        if self._tell_nodes is not None:
            for message in encode_bans([sub], banned):
                self._tell_nodes(message)

    def bans_for_nodes(self) -> list[str]:
        """The whole ban list, for an edge's pull as it opens."""
        return encode_bans(sorted(self.policy.banned))

    def mirror_bans(self, bans: Bans) -> None:
        """An edge: the origin's bans, applied here (joins refused) and passed on to its edges."""
        for sub in bans.subs:
            (self.policy.ban if bans.banned else self.policy.unban)(sub)
        if self._tell_nodes is not None:
            for message in encode_bans(list(bans.subs), bans.banned):
                self._tell_nodes(message)

    def mute(self, sub: str, seconds: float) -> None:
        now = time.time()
        self.policy.mute(sub, now + seconds)
        self._actions.append((now, "mute", sub, None))

    async def history(self, since: float, until: float, limit: int) -> list[Comment]:
        """Comments posted from ``since`` to ``until`` (wall seconds), oldest first, without the
        deleted ones, at most ``limit``: what a replay shows beside the video. Stored ones are
        read after this tick's comments and deletions are written (so none is missed)."""
        if self._store is None or self._pool is None:
            return [c for c in self.recent if since <= c.at <= until][:limit]
        await self._save()
        store = self._store
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, store.between, self.stream, since, until, limit
        )

    # ---- host console -------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(HOST_QUEUE_EVENTS)
        self.hosts.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self.hosts.discard(queue)

    def order(self, notice: OrderNotice, now: float) -> bool:
        """An order: to the host console always, to viewers when the notice gate allows (True)."""
        message = encode(notice)
        self._to_hosts(message)
        if not self.notices.allow(now):
            return False
        self._broadcast(message)
        return True

    def _to_hosts(self, message: str) -> None:
        for queue in list(self.hosts):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # a console that cannot keep up is cut off; it reconnects
                self.hosts.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    # ---- the ticker -----------------------------------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.time()
            if now >= self._display_at:  # the display stream and the like totals, once a second
                self._display_at = now + DISPLAY_BATCH_S
                due = [comment_json(c) for c in self.display.due(now)]
                if len(due) > 1:
                    due = [encode_batch(due)]
                if self.likes.due(now):
                    message = encode(LikeTotals(self.likes.total, dict(self.likes.gifts)))
                    due.append(message)
                    self._to_hosts(message)
                if due:  # one data-channel message per viewer per tick, whatever is in it
                    self._broadcast(encode_together(due))
            try:
                await self._save()
            except Exception as exc:  # storage trouble must not stop the chat; it is retried next tick
                log.error("talk %s: storing comments failed: %s: %s", self.stream, type(exc).__name__, exc)

    async def _save(self) -> None:
        if self._store is None or self._pool is None or not (self._unsaved or self._actions or self.likes.batches):
            return
        comments, self._unsaved = self._unsaved, []
        actions, self._actions = self._actions, []
        likes = (self.likes.total, dict(self.likes.gifts)) if self.likes.batches else None
        self.likes.batches = 0
        store = self._store
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._pool, store.write, self.stream, comments, actions, likes
            )
        except BaseException:
            self._unsaved[:0] = comments  # kept for the next try
            self._actions[:0] = actions
            self.likes.batches += likes is not None
            raise
