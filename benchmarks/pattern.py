"""A frame counter drawn into the picture as blocks, readable after lossy coding and scaling.

Used by test and benchmark publishers to prove that viewers decode the publisher's content.
The top band of the frame holds ``BITS`` blocks, white for 1 and black for 0 (MSB first).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 16
BAND_FRACTION = 0.125  # the band is the top eighth of the frame


def draw_counter(luma: npt.NDArray[np.uint8], value: int) -> None:
    """Draw ``value`` (mod 2**BITS) into the top band of a luma plane, in place."""
    height, width = luma.shape
    band = max(2, int(height * BAND_FRACTION))
    block = width // BITS
    for bit in range(BITS):
        on = (value >> (BITS - 1 - bit)) & 1
        luma[:band, bit * block : (bit + 1) * block] = 235 if on else 16


def read_counter(luma: npt.NDArray[np.uint8]) -> int:
    """Read the counter back from a (possibly scaled, lossy) luma plane."""
    height, width = luma.shape
    band = max(2, int(height * BAND_FRACTION))
    block = width // BITS
    # Sample the middle of each block, away from edges smeared by scaling and coding.
    top, bottom = band // 4, max(band // 4 + 1, 3 * band // 4)
    value = 0
    for bit in range(BITS):
        left = bit * block + block // 4
        right = max(left + 1, (bit + 1) * block - block // 4)
        mean = float(luma[top:bottom, left:right].mean())
        value = (value << 1) | int(mean > 128)
    return value
