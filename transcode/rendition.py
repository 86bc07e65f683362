"""Rendition specs, the default ladder, and the pure geometry that fits a source into a rung."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rendition:
    """What one rung of the ladder encodes: its name, bounding box, rate and GOP."""

    name: str
    max_width: int
    max_height: int
    video_kbps: int
    fps: int
    gop_frames: int


# (name, box width, box height, kbps) per rung, highest first: how configuration spells a ladder.
Ladder = tuple[tuple[str, int, int, int], ...]
# The ladder a stream gets unless its config says otherwise.
DEFAULT_LADDER: Ladder = (
    ("720p", 1280, 720, 2500),
    ("480p", 854, 480, 1000),
    ("240p", 426, 240, 350),
)


def fit_within(src_w: int, src_h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """Scale (src_w, src_h) down to fit in (max_w, max_h), keeping aspect ratio; never up.

    Both results are even (H.264 4:2:0 needs it) and at least 2.
    """
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"source size must be positive, got {src_w}x{src_h}")
    scale = min(1.0, max_w / src_w, max_h / src_h)
    # Round to the nearest even size (so 1280x720 in a 426x240 box gives 426x240, not 426x238),
    # then make sure rounding never leaves the box or grows past the source.
    w = min(round(src_w * scale / 2) * 2, max_w // 2 * 2, src_w // 2 * 2)
    h = min(round(src_h * scale / 2) * 2, max_h // 2 * 2, src_h // 2 * 2)
    return max(2, w), max(2, h)


def active_rungs(ladder: Sequence[Rendition], src_w: int, src_h: int) -> list[Rendition]:
    """The rungs worth encoding for a source, highest first: never upscale, no duplicates.

    Walking up from the smallest box, every rung is kept until the first whose box holds the
    whole source; that one encodes the source at its own size and the larger ones are dropped.
    So a 480p source yields 480p and 240p, a 360p source yields 480p (at 640x360) and 240p,
    and a tiny source still gets one rendition.
    """
    kept: list[Rendition] = []
    sizes: set[tuple[int, int]] = set()
    for rung in sorted(ladder, key=lambda r: r.max_width * r.max_height):
        size = fit_within(src_w, src_h, rung.max_width, rung.max_height)
        if size not in sizes:
            sizes.add(size)
            kept.append(rung)
        if size == (src_w // 2 * 2, src_h // 2 * 2):
            break
    kept.reverse()
    return kept
