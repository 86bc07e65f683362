from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcode.rendition import DEFAULT_LADDER, Rendition, active_rungs, fit_within


@pytest.mark.parametrize(
    ("src", "box", "expected"),
    [
        ((1920, 1080), (1280, 720), (1280, 720)),
        ((1280, 720), (1280, 720), (1280, 720)),
        ((640, 480), (1280, 720), (640, 480)),  # never upscaled
        ((1080, 1920), (1280, 720), (404, 720)),  # portrait phone: height bound
        ((2560, 1080), (1280, 720), (1280, 540)),
        ((641, 361), (1280, 720), (640, 360)),  # odd sizes made even
    ],
)
def test_fit_within(src: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]) -> None:
    assert fit_within(*src, *box) == expected


@given(st.integers(2, 8000), st.integers(2, 8000), st.integers(16, 4000), st.integers(16, 4000))
def test_fit_is_even_inside_the_box_and_keeps_aspect(w: int, h: int, mw: int, mh: int) -> None:
    fw, fh = fit_within(w, h, mw, mh)
    assert fw % 2 == 0 and fh % 2 == 0
    assert fw <= max(mw, 2) and fh <= max(mh, 2)
    assert fw <= w + 1 and fh <= h + 1
    if fw > 20 and fh > 20:
        assert abs(fw / fh - w / h) / (w / h) < 0.1


def test_non_positive_source_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_within(0, 720, 1280, 720)


def _ladder() -> list[Rendition]:
    return [Rendition(n, w, h, k, 30, 60) for n, w, h, k in DEFAULT_LADDER]


@pytest.mark.parametrize(
    ("src", "names"),
    [
        ((1920, 1080), ["720p", "480p", "240p"]),
        ((1280, 720), ["720p", "480p", "240p"]),
        ((854, 480), ["480p", "240p"]),
        ((640, 480), ["480p", "240p"]),
        ((426, 240), ["240p"]),
        ((160, 120), ["240p"]),  # tiny source: one rung at its own size
        ((640, 360), ["480p", "240p"]),  # between rungs: the 480p rung carries the source size
        ((1080, 1920), ["720p", "480p", "240p"]),  # portrait phone
    ],
)
def test_active_rungs_never_upscale(src: tuple[int, int], names: list[str]) -> None:
    assert [r.name for r in active_rungs(_ladder(), *src)] == names
