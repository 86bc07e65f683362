"""What viewers see of a busy chat: a stream a person can read (pure: ``now`` passed in).

Thousands may comment at once, but nobody reads more than a few lines a second, and sending
every comment to every viewer would cost more than the video. So the host console gets every
accepted comment, while viewers get at most ``per_s`` a second, the most relevant first: the
host's and moderators' words, then questions about the product on screen, then the rest, newest
first; what cannot be shown within ``max_age_s`` is dropped (counted). A viewer's own comment
is always echoed to that viewer at once (by the caller), so nobody wonders whether it was sent.
"""

from __future__ import annotations

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
    """Owns the comments waiting to be shown to viewers and the record of what was shown when.

    Per tick this costs what it shows, not what waits: comments wait in one deque per priority in
    arrival order (newest on the right), the stale ones leave from the left, and each deque keeps
    at most ``per_s * (max_age_s + 1)`` comments. That cap loses nothing that could have been
    shown: newest go first at most ``per_s`` a second, so a comment with that many newer ones of
    its priority ahead of it would be older than ``max_age_s`` before its turn came.
    """

    def __init__(self, per_s: int = 10, max_age_s: float = 3.0) -> None:
        self.per_s = per_s
        self.max_age_s = max_age_s
        self._keep = max(1, int(per_s * (max_age_s + 1)))
        self._waiting: tuple[deque[Comment], ...] = tuple(deque() for _ in (HOST, QUESTION, OTHER))
        self._shown_at: deque[float] = deque()
        self.dropped = 0

    def offer(self, comment: Comment, rank: int) -> None:
        waiting = self._waiting[rank]
        if len(waiting) >= self._keep:
            waiting.popleft()
            self.dropped += 1
        waiting.append(comment)

    def remove(self, comment_id: int) -> None:
        """A deleted comment is never shown."""
        for waiting in self._waiting:
            for comment in waiting:
                if comment.id == comment_id:
                    waiting.remove(comment)
                    return

    def due(self, now: float) -> list[Comment]:
        """The comments to show now: as many as the last second's budget allows, best first."""
        shown = self._shown_at
        while shown and now - shown[0] >= 1.0:
            shown.popleft()
        oldest = now - self.max_age_s
        out: list[Comment] = []
        for waiting in self._waiting:
            while waiting and waiting[0].at < oldest:  # too old to be worth showing: gone now
                waiting.popleft()
                self.dropped += 1
            while waiting and len(shown) < self.per_s:
                out.append(waiting.pop())
                shown.append(now)
        return out


class NoticeGate:
    """At most one order notice to viewers per ``interval_s`` (a person reads one at a time; the
    card's sold count carries every order anyway); the orders between are counted in ``skipped``."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._last: float | None = None
        self.skipped = 0

    def allow(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.interval_s:
            self.skipped += 1
            return False
        self._last = now
        return True
