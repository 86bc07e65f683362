"""Rendition specs, the default ladder, and the pure geometry that sizes a source for a rung.

A rung is named and sized by its SHORT side, as video platforms do: "720p" is 1280x720 for a
landscape source and 720x1280 for an upright phone, and a 2560x1080 source's 720p is 1706x720.
Fitting every source into one landscape box (what this module did first) turned a 720x1280
phone into 404x720, a picture a third of the pixels its rung promised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rendition:
    """What one rung of the ladder encodes: its name, nominal size, rate and GOP.

    ``width`` x ``height`` is the nominal picture (in either orientation) that ``video_kbps`` is
    meant for; only its short side bounds a source, and the rate scales with the actual area.
    """

    name: str
    width: int
    height: int
    video_kbps: int
    fps: int
    gop_frames: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)


# The rung that forwards the publisher's own encoded frames (passthrough): never scaled nor
# encoded, so its size is the source's and its Rendition only names it and gives ABR its rate.
SOURCE = "source"

# (name, width, height, kbps) per rung, highest first: how configuration spells a ladder.
Ladder = tuple[tuple[str, int, int, int], ...]
# The ladder a stream gets unless its config says otherwise.
DEFAULT_LADDER: Ladder = (
    ("720p", 1280, 720, 2500),
    ("480p", 854, 480, 1000),
    ("240p", 426, 240, 350),
)


def _even(x: float) -> int:
    """The nearest even integer, halves rounded down: 854x480 at 240 is 426x240 (427 is a tie),
    the size every player expects of 240p, rather than 428x240."""
    return math.ceil(x / 2 - 0.5) * 2


def fit_short_side(src_w: int, src_h: int, short_side: int) -> tuple[int, int]:
    """Scale (src_w, src_h) so its short side is ``short_side``, keeping aspect ratio and
    orientation; never up.

    Both results are even (H.264 4:2:0 needs it) and at least 2.
    """
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"source size must be positive, got {src_w}x{src_h}")
    src_short, src_long = min(src_w, src_h), max(src_w, src_h)
    if src_short <= short_side:
        # At its own size: only trimmed to even (a source is never scaled up, nor squeezed).
        short, long = max(2, src_short // 2 * 2), max(2, src_long // 2 * 2)
    else:
        # The short side is the rung's (held to even), the long side follows the short side
        # actually chosen, rounded to the nearest even size (1280x720 at 240 gives 426x240).
        short = max(2, short_side // 2 * 2)
        long = max(2, min(_even(src_long * short / src_short), src_long // 2 * 2))
    return (long, short) if src_w >= src_h else (short, long)


def rung_size(rung: Rendition, src_w: int, src_h: int) -> tuple[int, int]:
    """The picture ``rung`` encodes for a source of that size."""
    return fit_short_side(src_w, src_h, rung.short_side)


def rung_kbps(rung: Rendition, width: int, height: int) -> int:
    """The rung's rate for a picture of that size: its nominal rate scaled by area.

    A portrait 720x1280 gets the 720p rate; a 4:3 960x720 three quarters of it; a small source
    encoded at its own size less. Bits per pixel stay what the ladder's author chose.
    """
    nominal = rung.width * rung.height
    return max(1, round(rung.video_kbps * width * height / nominal))


def active_rungs(ladder: Sequence[Rendition], src_w: int, src_h: int) -> list[Rendition]:
    """The rungs worth encoding for a source, highest first: never upscale, no duplicates.

    Walking up from the smallest short side, every rung is kept until the first whose short
    side reaches the source's; that one encodes the source at its own size and the larger ones
    are dropped. So a 480p source yields 480p and 240p, a 360p source yields 480p (at 640x360)
    and 240p, a tiny source still gets one rendition, and orientation never matters.
    """
    kept: list[Rendition] = []
    sizes: set[tuple[int, int]] = set()
    for rung in sorted(ladder, key=lambda r: (r.short_side, r.width * r.height)):
        size = rung_size(rung, src_w, src_h)
        if size not in sizes:
            sizes.add(size)
            kept.append(rung)
        if size == (max(2, src_w // 2 * 2), max(2, src_h // 2 * 2)):
            break
    kept.reverse()
    return kept
