"""What viewers see of a busy chat: a stream a person can read (pure: ``now`` passed in).

Thousands may comment at once, but nobody reads more than a few lines a second, and sending
every comment to every viewer would cost more than the video. So the host console gets every
accepted comment, while viewers get at most ``per_s`` a second, the most relevant first: the
host's and moderators' words, then questions about the product on screen, then the rest, newest
first; what cannot be shown within ``max_age_s`` is dropped (counted). A viewer's own comment
is always echoed to that viewer at once (by the caller), so nobody wonders whether it was sent.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Iterable

from relay.talk.comments import Comment

HOST, QUESTION, OTHER = 0, 1, 2  # lower shows first
WORD = re.compile(r"\w{3,}")


def priority(comment: Comment, on_screen_titles: Iterable[str]) -> int:
    """How much viewers need to see ``comment`` (``HOST`` < ``QUESTION`` < ``OTHER``)."""
    if comment.role in ("host", "moderator"):
        return HOST
    if "?" in comment.text:
        words = {w.casefold() for w in WORD.findall(comment.text)}
        if any(words & {w.casefold() for w in WORD.findall(title)} for title in on_screen_titles):
            return QUESTION
    return OTHER


class DisplaySampler:
    """Owns the comments waiting to be shown to viewers and the record of what was shown when."""

    def __init__(self, per_s: int = 10, max_age_s: float = 3.0) -> None:
        self.per_s = per_s
        self.max_age_s = max_age_s
        self._waiting: list[tuple[int, float, int, Comment]] = []  # (priority, -at, id, comment)
        self._shown_at: deque[float] = deque()
        self.dropped = 0

    def offer(self, comment: Comment, rank: int) -> None:
        heapq.heappush(self._waiting, (rank, -comment.at, comment.id, comment))

    def remove(self, comment_id: int) -> None:
        """A deleted comment is never shown."""
        self._waiting = [w for w in self._waiting if w[2] != comment_id]
        heapq.heapify(self._waiting)

    def due(self, now: float) -> list[Comment]:
        """The comments to show now: as many as the last second's budget allows, best first."""
        shown = self._shown_at
        while shown and now - shown[0] >= 1.0:
            shown.popleft()
        out: list[Comment] = []
        while self._waiting and len(shown) < self.per_s:
            _, _, _, comment = heapq.heappop(self._waiting)
            if now - comment.at > self.max_age_s:
                self.dropped += 1
                continue
            out.append(comment)
            shown.append(now)
        if self._waiting:  # anything too old to be worth showing goes now, not when its turn comes
            kept = [w for w in self._waiting if now - w[3].at <= self.max_age_s]
            self.dropped += len(self._waiting) - len(kept)
            self._waiting = kept
            heapq.heapify(self._waiting)
        return out
