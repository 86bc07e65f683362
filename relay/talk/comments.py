"""Which comments a stream accepts (pure: no I/O, ``now`` passed in).

Live-shopping chat is loud: half the audience comments, some of them the same words again and
again, some of them abusive. Every comment passes the same checks, in an order that tells the
viewer the most useful reason: banned or muted, anonymous posting off, empty or too long, a word
on the stream's filter list, the same text again within a while, too fast for this viewer, too
fast for the stream. What passes is a ``Comment`` with its id; the rest raises ``CommentRefused``
with the status an HTTP request would get and a one-line reason the viewer is shown.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.errors import LiveCartError
from relay.identity import Identity, Role
from relay.ratelimit import RateLimiter

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
MAX_TRACKED_VIEWERS = 100_000  # per-viewer state kept; the least recently active is forgotten first


class CommentRefused(LiveCartError):
    """A comment was not accepted; ``status`` and ``reason`` say why (``retry_after_s`` if a limit)."""

    def __init__(self, reason: str, status: int = 422, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.49)))}


@dataclass(frozen=True, slots=True)
class Comment:
    """One accepted comment, stamped with the media time of the frame on air when it arrived."""

    id: int
    sub: str
    name: str
    role: Role
    text: str
    at: float
    pts_ms: int


@dataclass(frozen=True, slots=True)
class CommentRules:
    """A stream's chat settings (``[streams.NAME.chat]`` in the configuration)."""

    max_chars: int = 200
    per_viewer_interval_s: float = 3.0  # a viewer may post once per this many seconds (burst 2)
    per_stream_per_s: float = 50.0  # comments accepted per second on the stream, all viewers together
    duplicate_window_s: float = 30.0  # the same text from the same viewer again within this is refused
    anonymous: bool = True  # guests (viewers of an open stream) may post
    words: tuple[str, ...] = ()  # refused words, matched whole and case-insensitively


class _Viewer:
    __slots__ = ("bucket", "last_text", "last_text_at")

    def __init__(self, rules: CommentRules) -> None:
        self.bucket = RateLimiter(1.0 / rules.per_viewer_interval_s, 2)
        self.last_text = ""
        self.last_text_at = float("-inf")


class CommentPolicy:
    """Owns one stream's chat rules, its ban and mute lists, and each viewer's recent activity."""

    def __init__(self, rules: CommentRules) -> None:
        self.rules = rules
        self._stream_bucket = RateLimiter(rules.per_stream_per_s, max(1, int(rules.per_stream_per_s)))
        self._viewers: OrderedDict[str, _Viewer] = OrderedDict()
        self._words = self._compile(rules.words)
        self.banned: set[str] = set()
        self.muted: dict[str, float] = {}  # sub -> until
        self._next_id = 0
        self.accepted = 0
        self.refused: dict[str, int] = {}

    @staticmethod
    def _compile(words: Iterable[str]) -> re.Pattern[str] | None:
        cleaned = [re.escape(w.strip().casefold()) for w in words if w.strip()]
        return re.compile(r"\b(?:" + "|".join(cleaned) + r")\b") if cleaned else None

    def ban(self, sub: str) -> None:
        self.banned.add(sub)

    def unban(self, sub: str) -> None:
        self.banned.discard(sub)
        self.muted.pop(sub, None)

    def mute(self, sub: str, until: float) -> None:
        self.muted[sub] = until

    def is_banned(self, sub: str) -> bool:
        return sub in self.banned

    def _refuse(self, kind: str, reason: str, status: int = 422, retry_after_s: float | None = None) -> CommentRefused:
        self.refused[kind] = self.refused.get(kind, 0) + 1
        return CommentRefused(reason, status, retry_after_s)

    def _viewer(self, sub: str) -> _Viewer:
        viewer = self._viewers.pop(sub, None) or _Viewer(self.rules)
        self._viewers[sub] = viewer
        while len(self._viewers) > MAX_TRACKED_VIEWERS:
            self._viewers.popitem(last=False)
        return viewer

    def check(self, who: Identity, text: object, *, now: float, pts_ms: int) -> Comment:
        """Accept ``text`` from ``who`` (a ``Comment``) or raise ``CommentRefused``."""
        rules = self.rules
        privileged = who.role in ("host", "moderator")
        if who.sub in self.banned:
            raise self._refuse("banned", "you are banned from this stream's chat", 403)
        until = self.muted.get(who.sub)
        if until is not None:
            if now < until:
                raise self._refuse("muted", f"you are muted for {until - now:.0f} more seconds", 403, until - now)
            del self.muted[who.sub]
        if who.guest and not rules.anonymous:
            raise self._refuse("anonymous", "sign in to comment: this stream takes no anonymous comments", 401)
        if not isinstance(text, str):
            raise self._refuse("invalid", "a comment is a text")
        text = CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()
        if not text:
            raise self._refuse("empty", "a comment must not be empty")
        if len(text) > rules.max_chars:
            raise self._refuse("long", f"a comment has at most {rules.max_chars} characters, this one {len(text)}")
        if self._words is not None and self._words.search(text.casefold()):
            raise self._refuse("filtered", "this comment contains a word the stream does not allow")
        viewer = self._viewer(who.sub)
        folded = text.casefold()
        if folded == viewer.last_text and now - viewer.last_text_at < rules.duplicate_window_s:
            raise self._refuse("duplicate", "you just said that")
        if not privileged:
            wait = viewer.bucket.take(now)
            if wait > 0:
                raise self._refuse(
                    "viewer_rate", f"slow down: one comment per {rules.per_viewer_interval_s:g} s", 429, wait
                )
            wait = self._stream_bucket.take(now)
            if wait > 0:
                raise self._refuse("stream_rate", "the chat is too busy right now; try again in a moment", 429, wait)
        viewer.last_text, viewer.last_text_at = folded, now
        self._next_id += 1
        self.accepted += 1
        return Comment(self._next_id, who.sub, who.name, who.role, text, now, pts_ms)

    def restore_ids(self, last_id: int) -> None:
        """Continue numbering after the stored comments (ids are unique per stream)."""
        self._next_id = max(self._next_id, last_id)
