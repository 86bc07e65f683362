"""The built-in demo publisher: a moving test pattern with a running clock, and a tone.

Made with FFmpeg's ``testsrc2`` and ``sine`` sources through PyAV, paced to real time, and fed
to a FrameSink exactly like a WHIP publisher's decoded media.
"""

from __future__ import annotations

import asyncio
import logging

import av
import av.filter

from ingest.frames import FrameSink

log = logging.getLogger(__name__)


def _source(filter_name: str, args: str, sink_name: str) -> av.filter.Graph:
    graph = av.filter.Graph()
    src = graph.add(filter_name, args)
    sink = graph.add(sink_name)
    src.link_to(sink)
    graph.configure()
    return graph


class SyntheticSource:
    """Owns the demo stream's generator task; acts as that stream's publisher."""

    def __init__(self, stream: str, sink: FrameSink, *, width: int = 1280, height: int = 720, fps: int = 30) -> None:
        self.id = "demo-source"
        self.stream = stream
        self._sink = sink
        self._fps = fps
        self._video = _source("testsrc2", f"size={width}x{height}:rate={fps}", "buffersink")
        self._audio = _source("sine", "frequency=440:sample_rate=48000:samples_per_frame=960", "abuffersink")
        self._task: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        return f"demo source {self.stream}"

    def ingest_stats(self) -> dict[str, object] | None:
        return None  # no network path: nothing is received

    @property
    def task_count(self) -> int:
        return int(self._task is not None and not self._task.done())

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name(self.label)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        frame_s = 1.0 / self._fps
        audio_s = 960 / 48000
        n_video = n_audio = 0
        self._sink.on_source_started()
        while True:
            now = loop.time() - start
            while n_audio * audio_s <= now:
                frame = self._audio.pull()
                assert isinstance(frame, av.AudioFrame)
                self._sink.on_audio(frame)
                n_audio += 1
            video = self._video.pull()
            assert isinstance(video, av.VideoFrame)
            self._sink.on_video(video)
            n_video += 1
            # Pacing, not synchronisation: the next frame is due at a fixed wall-clock time.
            await asyncio.sleep(max(0.0, start + n_video * frame_s - loop.time()))

    async def close(self, reason: str) -> None:
        log.info("%s: ending (%s)", self.label, reason)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
