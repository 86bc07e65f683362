"""Rung choice: which rung each viewer watches as the encoded set and the viewers' wishes change."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import BadRequest
from relay.sessions.rungs import AUTO, RungChoice
from transcode.rendition import Rendition

LADDER = [
    Rendition("1080p", 1920, 1080, 4500, 30, 60),
    Rendition("720p", 1280, 720, 2500, 30, 60),
    Rendition("480p", 854, 480, 1000, 30, 60),
    Rendition("240p", 426, 240, 350, 30, 60),
]
NAMES = [r.name for r in LADDER]

encoded_sets = st.lists(st.sampled_from(NAMES), min_size=1, unique=True)
wishes = st.sampled_from([*NAMES, AUTO])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["add", "choose", "encode", "remove"]), st.integers(0, 5), wishes, encoded_sets))
)
def test_every_viewer_is_always_aimed_at_an_encoded_rung_no_larger_than_it_asked_for(
    steps: list[tuple[str, int, str, list[str]]],
) -> None:
    choice = RungChoice(LADDER)
    wants: dict[str, str] = {}
    now = 0.0
    for op, viewer, wish, encoded in steps:
        now += 1.0
        vid = f"v{viewer}"
        if op == "add":
            choice.add(vid, wish)
            wants[vid] = wish
        elif op == "choose":
            target = choice.choose(vid, wish)
            assert (target is None) == (vid not in wants)
            if vid in wants:
                wants[vid] = wish
        elif op == "encode":
            targets = choice.set_encoded(encoded, now)
            assert set(targets) == set(wants)
        else:
            choice.remove(vid)
            wants.pop(vid, None)
        available = choice.available()
        for vid, wish in wants.items():
            target = choice.target(vid)
            assert target in available
            if wish != AUTO:
                lower_or_equal = NAMES[NAMES.index(wish) :]
                if any(n in available for n in lower_or_equal):
                    # The wish, or the nearest encoded rung below it: never a larger picture.
                    assert target == next(n for n in lower_or_equal if n in available)
                else:
                    assert target == available[-1]


def test_an_unknown_rendition_is_refused_with_the_choices_named() -> None:
    choice = RungChoice(LADDER)
    with pytest.raises(BadRequest, match="choose auto or one of 1080p, 720p, 480p, 240p"):
        choice.add("v", "4k")


def test_auto_viewers_start_on_480p_when_it_is_encoded_and_fixed_viewers_never_follow_the_abr() -> None:
    choice = RungChoice(LADDER)
    choice.set_encoded(["480p", "240p"], 0.0)
    assert choice.add("auto", AUTO) == "480p"
    assert choice.add("fixed", "240p") == "240p"
    assert choice.auto_decision("auto", "240p") == "240p"
    assert choice.auto_decision("fixed", "480p") is None
    choice.set_encoded(["240p"], 1.0)
    assert choice.target("auto") == "240p" and choice.target("fixed") == "240p"
