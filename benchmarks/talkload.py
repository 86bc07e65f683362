"""The conversation a benchmark viewer makes: comments at ``comment_rate`` a second (for the
share of viewers that comment) and like taps at ``like_rate`` a second, batched as the player
batches them (one message per 500 ms). ``TalkSchedule`` decides what is due (pure: ``now`` passed
in, counts exact over any run); ``TalkLoad`` sends it on the viewers' data channels and reads
what comes back (the author's echo, refusals, the display stream, like totals).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.benchstats import percentile
from relay.messages import split_together as unbatch

LIKE_BATCH_S = 0.5
TICK_S = 0.1
MAX_BATCH = 100  # the server refuses larger like batches


class TalkSchedule:
    """Owns one viewer's comment and tap clocks: how many of each are due by ``now``.

    Starts are spread by ``phase`` (0..1) so that viewers do not all post on the same tick."""

    def __init__(self, comment_rate: float, like_rate: float, *, start: float, phase: float) -> None:
        self.comment_rate = comment_rate
        self.like_rate = like_rate
        self.start = start
        self.phase = phase
        self.comments = 0  # comments made so far
        self.taps = 0  # taps made so far (sent or waiting in the batch)
        self.sent_taps = 0
        self._last_batch = start

    def due(self, now: float) -> tuple[int, int]:
        """``(comments, taps)`` to send now; taps come in batches at most every ``LIKE_BATCH_S``."""
        elapsed = max(0.0, now - self.start)
        comments = 0
        if self.comment_rate > 0:
            comments = max(0, math.floor(elapsed * self.comment_rate + self.phase) - self.comments)
            self.comments += comments
        if self.like_rate > 0:
            self.taps = math.floor(elapsed * self.like_rate + self.phase)
        taps = 0
        if now - self._last_batch >= LIKE_BATCH_S and self.taps > self.sent_taps:
            taps = min(MAX_BATCH, self.taps - self.sent_taps)
            self.sent_taps += taps
            self._last_batch = now
        return comments, taps


@dataclass
class TalkCounts:
    """What one worker's viewers said and heard (summed over workers by the bench)."""

    comments_sent: int = 0
    comments_echoed: int = 0  # accepted: the author got its own comment back
    comments_refused: dict[str, int] = field(default_factory=dict)  # status -> count
    taps_sent: int = 0
    like_total_seen: int = 0  # the highest like total any viewer was told
    display_received: int = 0  # display-stream comments received, all viewers together
    echo_ms: list[float] = field(default_factory=list)  # send -> own echo


def likes(i: int, share: float) -> bool:
    """Whether viewer ``i`` taps like when ``share`` of them do: spread evenly over the indices,
    so over the commenters (the first ones) and the others alike."""
    return math.floor((i + 1) * share) > math.floor(i * share)


class TalkLoad:
    """Owns the conversation of one worker's viewers: their schedules and what came back."""

    def __init__(
        self, channels: list[Any], comment_rate: float, like_rate: float, commenters: float, *, likers: float = 1.0
    ) -> None:
        self.channels = channels
        self.comment_rate = comment_rate
        self.like_rate = like_rate
        self.commenters = commenters
        self.likers = likers
        self.counts = TalkCounts()
        self._sent_at: dict[str, float] = {}
        self._schedules: list[TalkSchedule] = []
        self.answered = asyncio.Event()  # set on every echo or refusal

    def on_message(self, at: float, text: str) -> None:
        """A message on a viewer's channel (called by the viewer, at arrival)."""
        self.answered.set()
        for one in unbatch(text):
            self._on_one(at, one)

    def _on_one(self, at: float, text: str) -> None:
        if text.startswith('{"type":"comments"'):  # the display stream, batched
            self.counts.display_received += len(json.loads(text)["comments"])
        elif '"type":"comment"' in text:
            message = json.loads(text)
            if message.get("mine"):
                self.counts.comments_echoed += 1
                sent = self._sent_at.pop(str(message.get("text")), None)
                if sent is not None:
                    self.counts.echo_ms.append((at - sent) * 1000)
            else:
                self.counts.display_received += 1
        elif '"type":"likes"' in text:
            self.counts.like_total_seen = max(self.counts.like_total_seen, int(json.loads(text)["total"]))
        elif '"type":"error"' in text:
            status = str(json.loads(text).get("status"))
            self.counts.comments_refused[status] = self.counts.comments_refused.get(status, 0) + 1

    async def run(self, start: float, end: float, worker: int) -> None:
        """Talk from ``start`` to ``end`` (``time.monotonic()``), on a 100 ms tick."""
        n = len(self.channels)
        talkers = round(n * self.commenters)
        self._schedules = [
            TalkSchedule(
                self.comment_rate if i < talkers else 0.0,
                self.like_rate if likes(i, self.likers) else 0.0,
                start=start,
                phase=i / max(1, n),
            )
            for i in range(n)
        ]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        while (now := time.monotonic()) < end:
            for i, (channel, schedule) in enumerate(zip(self.channels, self._schedules, strict=True)):
                comments, taps = schedule.due(now)
                if channel is None or channel.readyState != "open":
                    continue
                for _ in range(comments):
                    text = f"w{worker} v{i} c{schedule.comments} is this in stock?"
                    self._sent_at[text] = now
                    channel.send(json.dumps({"type": "comment", "text": text}))
                    self.counts.comments_sent += 1
                if taps:
                    channel.send(json.dumps({"type": "like", "count": taps}))
                    self.counts.taps_sent += taps
            await asyncio.sleep(TICK_S)


async def settle(load: TalkLoad, timeout_s: float) -> None:
    """Wait (bounded) until every comment sent has its echo or its refusal back."""
    c = load.counts
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while c.comments_sent > c.comments_echoed + sum(c.comments_refused.values()):
                load.answered.clear()
                await load.answered.wait()


def summarise_talk(parts: list[TalkCounts], window_s: float) -> dict[str, Any]:
    """The conversation keys of one bench level, from every worker's counts."""
    refused: dict[str, int] = {}
    for part in parts:
        for status, n in part.comments_refused.items():
            refused[status] = refused.get(status, 0) + n
    echo = [ms for part in parts for ms in part.echo_ms]
    sent = sum(p.comments_sent for p in parts)
    return {
        "comments_sent": sent,
        "comments_per_s": sent / window_s if window_s else 0.0,
        "comments_echoed": sum(p.comments_echoed for p in parts),
        "comments_refused": refused,
        "comment_echo_ms_p50": percentile(echo, 50),
        "comment_echo_ms_p99": percentile(echo, 99),
        "taps_sent": sum(p.taps_sent for p in parts),
        "like_total_seen": max((p.like_total_seen for p in parts), default=0),
        "display_received": sum(p.display_received for p in parts),
    }
