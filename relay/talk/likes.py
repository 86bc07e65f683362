"""Likes and gifts: exact totals, broadcast at most twice a second (pure: ``now`` passed in).

No platform sends a message per tap: the player batches its taps (``{"type": "like", "count":
N}`` at most every 500 ms) and the server adds them up and tells everyone the totals at most
every ``interval_s``. Every accepted tap is counted exactly once; a batch that is not a whole
number from 1 to ``max_batch`` is refused whole (never clipped), so the client knows it did not
count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ingest.errors import LiveCartError

GIFT = re.compile(r"^[a-z0-9_-]{1,24}$")  # a gift kind as the shop names it ("rose", "super-rocket")


class LikeRefused(LiveCartError):
    status = 422


def check_like(count: object, gift: object = None, max_batch: int = 100) -> None:
    """Raise ``LikeRefused`` unless ``count`` taps (of ``gift``, when it names one) may be counted."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= max_batch:
        raise LikeRefused(f"a like batch is a whole number from 1 to {max_batch}")
    if gift is not None and not (isinstance(gift, str) and GIFT.fullmatch(gift)):
        raise LikeRefused("a gift is named by 1 to 24 lower-case letters, digits, - or _")


class LikeTally:
    """Owns one stream's like total, per-gift counts and when totals were last broadcast."""

    def __init__(
        self, *, interval_s: float = 0.5, max_batch: int = 100, gifts: Mapping[str, int] | None = None
    ) -> None:
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.total = 0
        self.gifts: dict[str, int] = dict(gifts or {})
        self._changed = False
        self._sent_at: float | None = None
        self.batches = 0

    def add(self, count: object, gift: object = None) -> None:
        """Count one batch of taps (a like, or a gift when ``gift`` names one)."""
        check_like(count, gift, self.max_batch)
        assert isinstance(count, int)
        if gift is None:
            self.total += count
        else:
            assert isinstance(gift, str)
            self.gifts[gift] = self.gifts.get(gift, 0) + count
        self.batches += 1
        self._changed = True

    def add_sums(self, likes: int, gifts: Mapping[str, int]) -> None:
        """Count an edge's sums of its viewers' batches (each already checked by ``check_like``
        there); gift names that are not names are skipped."""
        self.total += likes
        for gift, count in gifts.items():
            if GIFT.fullmatch(gift) and count > 0:
                self.gifts[gift] = self.gifts.get(gift, 0) + count
        if likes or gifts:
            self.batches += 1
            self._changed = True

    def due(self, now: float) -> bool:
        """Whether the totals changed and may be broadcast now (then they count as sent)."""
        if not self._changed or (self._sent_at is not None and now - self._sent_at < self.interval_s):
            return False
        self._changed = False
        self._sent_at = now
        return True
