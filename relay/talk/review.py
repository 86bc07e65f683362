"""What a stream does with the shop's review of a comment (pure: no I/O, no clock).

A shop may want every comment seen by its own moderation service before anyone reads it (IVS
Chat calls it a review handler and gives it 200 ms). That service will sometimes be slow, down
or wrong, and live chat cannot wait for it: the stream gives each review a deadline and then
applies its setting, fail open (the comment is shown, as if the review allowed it) or fail
closed (the comment is refused with 503, so the viewer knows to try again later). The decision
between "allowed", "refused by the shop" and "the review failed" is easy to get subtly wrong
(a 404 from a mistyped URL is not a refusal, a 200 saying ``allow: false`` is), so it lives here
and is property-tested; ``relay.talk.reviewer`` only makes the HTTP call.

The shop's endpoint gets ``POST {"stream", "id", "sub", "name", "role", "text"}`` and answers:
- ``2xx`` with no body, or a JSON object without ``"allow": false``: allowed;
- ``2xx`` with ``{"allow": false, "reason": "..."}``, or ``403`` / ``422``: refused (``422``);
  the reason (one line, at most 200 characters) is what the viewer is told;
- anything else, no answer before the deadline, or no connection: the review failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.talk.comments import CONTROL

MAX_REASON = 200
REFUSED = "the shop's moderation did not allow this comment"
UNAVAILABLE = "comments cannot be reviewed right now; try again in a moment"


@dataclass(frozen=True, slots=True)
class ReviewAnswer:
    """What came back from the shop's review endpoint: ``status`` is None when nothing did (no
    connection, or the deadline passed); ``body`` is the parsed JSON body (None if none or not JSON)."""

    status: int | None
    body: object = None


@dataclass(frozen=True, slots=True)
class ReviewVerdict:
    """Whether a reviewed comment is shown; if not, the status and reason its author gets.
    ``failed`` says the review itself failed (then the fail mode decided)."""

    allowed: bool
    status: int = 200
    reason: str = ""
    failed: bool = False


def _reason(body: object) -> str:
    if isinstance(body, dict):
        reason = body.get("reason")
        if isinstance(reason, str):
            cleaned = " ".join(CONTROL.sub(" ", reason).split())[:MAX_REASON]
            if cleaned:
                return cleaned
    return REFUSED


def verdict(answer: ReviewAnswer, *, fail_open: bool) -> ReviewVerdict:
    """Decide a comment's fate from the review's ``answer`` and the stream's fail mode."""
    status, body = answer.status, answer.body
    if status is not None and 200 <= status < 300:
        if isinstance(body, dict) and body.get("allow") is False:
            return ReviewVerdict(False, 422, _reason(body))
        return ReviewVerdict(True)
    if status in (403, 422):
        return ReviewVerdict(False, 422, _reason(body))
    if fail_open:
        return ReviewVerdict(True, failed=True)
    return ReviewVerdict(False, 503, UNAVAILABLE, failed=True)
