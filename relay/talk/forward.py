"""An edge's side of the conversation: what its viewers post, gathered for the origin (pure:
``now`` passed in).

The origin owns a stream's conversation (its rules, ids, bans, store, display stream and like
totals), so a comment posted to an edge must be decided there, once, with every other node's
comments. An edge forwards its viewers' comments and likes on its pull's data channel: not one
message each (each is an SCTP send, and an origin has many edges), but one ``edge_talk`` at most
every ``interval_s`` with the comments posted since (each tagged with the poster's identity,
which the edge checked, and the viewer's id the origin's reply names) and the likes summed. The
origin answers each comment (its echo, or the refusal) in a ``to_viewers``; its display stream,
like totals and deletions reach the edge's viewers as its other broadcasts do.

What the edge itself refuses, at once: a like batch the origin would refuse (the same rule),
a comment longer than any stream allows, and anything once ``max_waiting`` comments wait (the
origin is unreachable and the pull is being made again).
"""

from __future__ import annotations

import dataclasses
import json

from relay.identity import Identity
from relay.messages import MAX_EDGE_COMMENTS, EdgeComment, EdgeTalk, encode_edge_talk
from relay.talk.comments import CommentRefused
from relay.talk.likes import check_like

MAX_TEXT_CHARS = 2000  # longer than any stream's max_chars; the origin applies the stream's own
MAX_MESSAGE_BYTES = 32 * 1024  # an edge_talk stays well inside a data channel message


class EdgeTalkBuffer:
    """Owns the comments and like sums an edge has not forwarded yet, and when it last did."""

    def __init__(self, *, interval_s: float = 0.1, max_waiting: int = 2048) -> None:
        self.interval_s = interval_s
        self.max_waiting = max_waiting
        self._comments: list[EdgeComment] = []
        self._likes = 0
        self._gifts: dict[str, int] = {}
        self._sent_at: float | None = None
        self.forwarded = 0  # comments handed over in edge_talk messages
        # The shop's analytics: this node's viewers, and on a relay each edge's (by its pull).
        self._viewers = 0
        self._below: dict[str, int] = {}
        self._sent_viewers = 0
        self._joins = 0
        self._clicks: list[tuple[str, str]] = []

    @property
    def viewers(self) -> int:
        """What the next ``edge_talk`` says this node's viewers are (its edges' included)."""
        return self._viewers + sum(self._below.values())

    @property
    def waiting(self) -> bool:
        return bool(
            self._comments or self._likes or self._gifts or self._joins or self._clicks
        ) or self.viewers != self._sent_viewers

    def audience(self, viewers: int, *, joined: bool) -> None:
        """This node's viewer count changed (``joined``: by a viewer's arrival)."""
        self._viewers = viewers
        self._joins += joined

    def clicked(self, ref: str, card: str) -> None:
        if len(self._clicks) < self.max_waiting:
            self._clicks.append((ref, card[:200]))

    def below_gone(self, prefix: str) -> None:
        """A relay: the edge pulling as ``prefix`` left; its viewers are no longer counted here."""
        self._below.pop(prefix, None)

    def comment(self, ref: str, who: Identity, text: object) -> None:
        """Keep a viewer's comment for the next ``edge_talk`` (or raise ``CommentRefused``)."""
        if not isinstance(text, str):
            raise CommentRefused("a comment needs a text")
        if len(text) > MAX_TEXT_CHARS:
            raise CommentRefused(f"a comment has at most {MAX_TEXT_CHARS} characters")
        if len(self._comments) >= self.max_waiting:
            raise CommentRefused("the conversation is busy on this server; try again in a moment", 503, 1.0)
        self._comments.append(EdgeComment(ref, who.sub, who.name, who.role, who.guest, text))

    def add(self, talk: EdgeTalk, prefix: str) -> list[str]:
        """A relay: an edge's ``edge_talk``, on its way up, each comment's ``ref`` prefixed with
        ``prefix`` (the edge's pull) so the origin's replies find their way back; returns the
        refs refused for want of room (the edge tells their viewers)."""
        room = max(0, self.max_waiting - len(self._comments))
        taken, refused = talk.comments[:room], talk.comments[room:]
        self._comments.extend(
            EdgeComment(f"{prefix}/{c.ref}", c.sub, c.name, c.role, c.guest, c.text) for c in taken
        )
        self._likes += talk.likes
        for gift, count in talk.gifts.items():
            self._gifts[gift] = self._gifts.get(gift, 0) + count
        self._below[prefix] = talk.viewers
        self._joins += talk.joins
        for ref, card in talk.clicks:
            self.clicked(f"{prefix}/{ref}", card)
        return [c.ref for c in refused]

    def like(self, count: object, gift: object = None) -> None:
        """Add a viewer's like batch to the sums (or raise ``LikeRefused`` as the origin would)."""
        check_like(count, gift)
        assert isinstance(count, int)
        if gift is None:
            self._likes += count
        else:
            assert isinstance(gift, str)
            self._gifts[gift] = self._gifts.get(gift, 0) + count

    def next_due(self, now: float) -> float | None:
        """When the waiting talk may be sent (None: nothing waits)."""
        if not self.waiting:
            return None
        return now if self._sent_at is None else max(now, self._sent_at + self.interval_s)

    def due(self, now: float) -> list[str]:
        """The ``edge_talk`` messages to send now (encoded; several when the comments would not
        fit one), or none when nothing waits or the last went out less than ``interval_s`` ago."""
        when = self.next_due(now)
        if when is None or when > now:
            return []
        self._sent_at = now
        batches: list[list[EdgeComment]] = [[]]
        size = 0
        for item in self._comments:
            cost = len(json.dumps(dataclasses.astuple(item))) + 1
            if batches[-1] and (size + cost > MAX_MESSAGE_BYTES or len(batches[-1]) >= MAX_EDGE_COMMENTS):
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += cost
        clicks = [self._clicks[i : i + MAX_EDGE_COMMENTS] for i in range(0, len(self._clicks), MAX_EDGE_COMMENTS)]
        viewers = self.viewers
        messages = []
        for index in range(max(len(batches), len(clicks))):
            first = index == 0  # the sums and the joins go once
            messages.append(
                encode_edge_talk(
                    EdgeTalk(
                        tuple(batches[index]) if index < len(batches) else (),
                        self._likes if first else 0,
                        self._gifts if first else {},
                        viewers,
                        self._joins if first else 0,
                        tuple(clicks[index]) if index < len(clicks) else (),
                    )
                )
            )
        self.forwarded += len(self._comments)
        self._comments, self._likes, self._gifts = [], 0, {}
        self._joins, self._clicks, self._sent_viewers = 0, [], viewers
        return messages

    def drop(self) -> list[str]:
        """Forget what waits (the pull broke): the refs of the viewers whose comments are lost."""
        refs = [c.ref for c in self._comments]
        self._comments, self._likes, self._gifts = [], 0, {}
        self._clicks = []
        self._sent_viewers = -1  # the next pull is told the whole audience again
        return refs

