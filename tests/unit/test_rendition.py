from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcode.rendition import DEFAULT_LADDER, Rendition, active_rungs, fit_short_side, rung_kbps, rung_size


@pytest.mark.parametrize(
    ("src", "short", "expected"),
    [
        ((1920, 1080), 720, (1280, 720)),
        ((1280, 720), 720, (1280, 720)),
        ((640, 480), 720, (640, 480)),  # never upscaled
        ((720, 1280), 720, (720, 1280)),  # portrait phone: upright, the same pixels as landscape
        ((720, 1280), 480, (480, 854)),
        ((720, 1280), 240, (240, 426)),
        ((1080, 1920), 720, (720, 1280)),
        ((2560, 1080), 720, (1706, 720)),  # ultrawide: named by its short side, as platforms do
        ((1440, 1080), 720, (960, 720)),  # 4:3
        ((641, 361), 720, (640, 360)),  # odd sizes made even
        ((1080, 1080), 480, (480, 480)),
        ((854, 480), 240, (426, 240)),  # 427 is a tie: rounded down, to the size players expect
        ((480, 854), 240, (240, 426)),
    ],
)
def test_fit_short_side(src: tuple[int, int], short: int, expected: tuple[int, int]) -> None:
    assert fit_short_side(*src, short) == expected


sides = st.integers(2, 8000)


@given(sides, sides, st.integers(16, 4000))
def test_fit_keeps_orientation_never_upscales_and_is_even(w: int, h: int, short: int) -> None:
    fw, fh = fit_short_side(w, h, short)
    assert fw % 2 == 0 and fh % 2 == 0
    assert min(fw, fh) <= short  # the short side never above the rung's
    assert fw <= max(2, w // 2 * 2) and fh <= max(2, h // 2 * 2)  # never upscaled
    if w > h:
        assert fw >= fh
    elif w < h:
        assert fw <= fh
    if min(w, h) >= short:
        # A source at least the rung's size gets exactly the rung's short side.
        assert min(fw, fh) == short // 2 * 2


@given(sides, sides, st.integers(16, 4000))
def test_fit_keeps_aspect_ratio_within_rounding(w: int, h: int, short: int) -> None:
    fw, fh = fit_short_side(w, h, short)
    (out_short, out_long), (src_short, src_long) = sorted((fw, fh)), sorted((w, h))
    if src_short <= short:
        assert (fw, fh) == (max(2, w // 2 * 2), max(2, h // 2 * 2))  # its own size, trimmed to even
    else:
        # The long side is the exact one for the chosen short side, rounded to even: <= 1 px off.
        assert abs(out_long - src_long * out_short / src_short) <= 1 or out_long == 2


@given(sides, sides, st.integers(16, 4000))
def test_fit_is_symmetric_in_orientation(w: int, h: int, short: int) -> None:
    fw, fh = fit_short_side(w, h, short)
    assert fit_short_side(h, w, short) == (fh, fw)


def test_non_positive_source_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_short_side(0, 720, 720)


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
        ((720, 1280), ["720p", "480p", "240p"]),
        ((480, 854), ["480p", "240p"]),  # a 480p phone: no upscaled 720p
    ],
)
def test_active_rungs_never_upscale(src: tuple[int, int], names: list[str]) -> None:
    assert [r.name for r in active_rungs(_ladder(), *src)] == names


def test_portrait_phone_keeps_its_orientation_at_every_rung() -> None:
    sizes = {r.name: rung_size(r, 720, 1280) for r in active_rungs(_ladder(), 720, 1280)}
    assert sizes == {"720p": (720, 1280), "480p": (480, 854), "240p": (240, 426)}


@given(sides, sides)
def test_active_rungs_are_distinct_highest_first_and_never_upscaled(w: int, h: int) -> None:
    rungs = active_rungs(_ladder(), w, h)
    sizes = [rung_size(r, w, h) for r in rungs]
    assert rungs and len(set(sizes)) == len(sizes)
    assert [min(s) for s in sizes] == sorted((min(s) for s in sizes), reverse=True)
    assert all(sw <= max(2, w // 2 * 2) and sh <= max(2, h // 2 * 2) for sw, sh in sizes)
    # The same rungs whichever way up the source is held.
    assert [r.name for r in active_rungs(_ladder(), h, w)] == [r.name for r in rungs]


def test_rate_scales_with_area_against_the_nominal_size() -> None:
    rung = Rendition("720p", 1280, 720, 2500, 30, 60)
    assert rung_kbps(rung, 1280, 720) == 2500
    assert rung_kbps(rung, 720, 1280) == 2500  # portrait: the same pixels, the same rate
    assert rung_kbps(rung, 960, 720) == 1875  # 4:3
    assert rung_kbps(rung, 640, 360) == 625  # a small source at its own size


@given(sides, sides)
def test_rate_never_exceeds_nominal_for_a_picture_inside_the_nominal_size(w: int, h: int) -> None:
    for rung in _ladder():
        fw, fh = rung_size(rung, w, h)
        kbps = rung_kbps(rung, fw, fh)
        assert kbps >= 1
        if max(fw, fh) <= rung.long_side:
            assert kbps <= rung.video_kbps
