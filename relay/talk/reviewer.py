"""The HTTP call to a shop's comment review endpoint, with its deadline (the decision is in
``relay.talk.review``). A busy chat would log a line per comment while the endpoint is down, so
this logs when the review goes down and when it is back, and counts the rest.
"""

from __future__ import annotations

import json
import logging

import aiohttp

from relay.talk.comments import Comment
from relay.talk.review import ReviewAnswer, ReviewVerdict, verdict

log = logging.getLogger(__name__)

MAX_ANSWER = 4096  # bytes of the endpoint's answer read; a longer one is not JSON we use


class Reviewer:
    """Owns the HTTP client of one stream's review endpoint and the counts of its outcomes."""

    def __init__(self, stream: str, url: str, *, deadline_s: float, fail_open: bool) -> None:
        self.stream = stream
        self.url = url
        self.deadline_s = deadline_s
        self.fail_open = fail_open
        self._session: aiohttp.ClientSession | None = None
        self._down = False
        self.counts = {"allowed": 0, "refused": 0, "failed": 0}

    async def review(self, comment: Comment) -> ReviewVerdict:
        answer = await self._ask(comment)
        result = verdict(answer, fail_open=self.fail_open)
        self.counts["failed" if result.failed else "allowed" if result.allowed else "refused"] += 1
        if result.failed != self._down:
            self._down = result.failed
            if result.failed:
                mode = "shown unreviewed" if self.fail_open else "refused"
                log.warning(
                    "talk %s: comment review %s failed (status %s); comments are %s until it answers",
                    self.stream, self.url, answer.status, mode,
                )
            else:
                log.info("talk %s: comment review %s answers again", self.stream, self.url)
        return result

    async def _ask(self, comment: Comment) -> ReviewAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.deadline_s))
        payload = {
            "stream": self.stream,
            "id": comment.id,
            "sub": comment.sub,
            "name": comment.name,
            "role": comment.role,
            "text": comment.text,
        }
        try:
            async with self._session.post(self.url, json=payload) as res:
                raw = await res.content.read(MAX_ANSWER)
                status = res.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return ReviewAnswer(None)
        try:
            body: object = json.loads(raw) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        return ReviewAnswer(status, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
