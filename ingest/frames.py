"""The boundary between ingest and transcode: where a publisher's decoded media goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import av

from ingest.jitter import AssembledFrame


class FrameSink(Protocol):
    """Receives one publisher's decoded media, on the event loop, in arrival order.

    Implementations must return at once (queue or drop); they never block the loop.
    """

    def on_video(self, frame: av.VideoFrame) -> None: ...

    def on_audio(self, frame: av.AudioFrame) -> None: ...

    def on_encoded_video(self, frame: AssembledFrame, request_keyframe: Callable[[], None]) -> None:
        """Each whole encoded H.264 frame, before decoding (LiveCart's receive path only);
        ``request_keyframe`` asks this publisher for one."""

    def on_source_started(self) -> None: ...
