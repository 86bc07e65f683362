"""The shop's comment review: what its answer means, and what the fail mode does when it fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.talk.review import REFUSED, UNAVAILABLE, ReviewAnswer, verdict

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
STATUS = st.none() | st.integers(100, 599)


def test_a_2xx_allows_unless_its_body_says_allow_false() -> None:
    assert verdict(ReviewAnswer(200), fail_open=False).allowed
    assert verdict(ReviewAnswer(204, {"allow": True}), fail_open=False).allowed
    assert verdict(ReviewAnswer(200, {"allow": "no"}), fail_open=False).allowed  # only false refuses
    refused = verdict(ReviewAnswer(200, {"allow": False, "reason": "no links,\nplease"}), fail_open=True)
    assert (refused.allowed, refused.status, refused.reason, refused.failed) == (False, 422, "no links, please", False)


def test_403_and_422_refuse_with_the_shops_reason_or_a_plain_one() -> None:
    assert verdict(ReviewAnswer(403, {"reason": "off topic"}), fail_open=True).reason == "off topic"
    assert verdict(ReviewAnswer(422, "not an object"), fail_open=True).reason == REFUSED
    assert verdict(ReviewAnswer(422, {"reason": " \x00 "}), fail_open=True).reason == REFUSED


def test_a_review_that_is_down_late_or_broken_applies_the_fail_mode() -> None:
    for answer in (ReviewAnswer(None), ReviewAnswer(500), ReviewAnswer(404), ReviewAnswer(302), ReviewAnswer(429)):
        shown = verdict(answer, fail_open=True)
        assert shown.allowed and shown.failed
        closed = verdict(answer, fail_open=False)
        assert (closed.allowed, closed.status, closed.reason, closed.failed) == (False, 503, UNAVAILABLE, True)


@given(STATUS, JSON, st.booleans())
def test_every_answer_gets_one_consistent_verdict(status: int | None, body: object, fail_open: bool) -> None:
    result = verdict(ReviewAnswer(status, body), fail_open=fail_open)
    answered = status is not None and (200 <= status < 300 or status in (403, 422))
    assert result.failed == (not answered)
    if result.failed:  # only the fail mode decides a failed review
        assert result.allowed == fail_open
    else:  # a review that answered is obeyed whatever the fail mode
        assert result == verdict(ReviewAnswer(status, body), fail_open=not fail_open)
    if result.allowed:
        assert result.status == 200 and result.reason == ""
    else:
        assert result.status in (422, 503)
        assert result.reason and "\n" not in result.reason and len(result.reason) <= 200


@given(st.text(max_size=400))
def test_the_shops_reason_reaches_the_viewer_as_one_short_line(reason: str) -> None:
    result = verdict(ReviewAnswer(200, {"allow": False, "reason": reason}), fail_open=True)
    assert not result.allowed and 0 < len(result.reason) <= 200
    assert not any(ch in result.reason for ch in "\n\r\x00\u2028")
