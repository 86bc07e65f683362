from __future__ import annotations

import av
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.pattern import BITS, draw_counter, read_counter


@given(st.integers(0, 2**BITS - 1))
def test_counter_round_trips(value: int) -> None:
    luma = np.full((360, 640), 90, dtype=np.uint8)
    draw_counter(luma, value)
    assert read_counter(luma) == value


def test_counter_survives_downscaling() -> None:
    luma = np.random.default_rng(1).integers(0, 255, (720, 1280), dtype=np.uint8)
    draw_counter(luma, 0xA5C3)
    frame = av.VideoFrame.from_ndarray(luma, format="gray")
    small = frame.reformat(width=426, height=240).to_ndarray()
    assert read_counter(small) == 0xA5C3
