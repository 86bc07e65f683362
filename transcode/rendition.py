"""Rendition specs and the pure geometry that fits a source into one."""

from __future__ import annotations

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


def fit_within(src_w: int, src_h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """Scale (src_w, src_h) down to fit in (max_w, max_h), keeping aspect ratio; never up.

    Both results are even (H.264 4:2:0 needs it) and at least 2.
    """
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"source size must be positive, got {src_w}x{src_h}")
    scale = min(1.0, max_w / src_w, max_h / src_h)
    w = max(2, int(src_w * scale) // 2 * 2)
    h = max(2, int(src_h * scale) // 2 * 2)
    return w, h
