"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

A media server whose loop lags delays every packet of every viewer, so the server measures
its own lag all the time and reports percentiles.
"""

from __future__ import annotations

import asyncio
from collections import deque

INTERVAL_S = 0.05
WINDOW = 1200  # samples kept: the last minute at 50 ms


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class LoopLagMonitor:
    """Owns a task that wakes every ``INTERVAL_S`` and records how late it woke (ms)."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=WINDOW)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name("loop lag monitor")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            self.samples.append(max(0.0, (loop.time() - due) * 1000))

    def snapshot(self) -> dict[str, float]:
        samples = list(self.samples)
        return {
            "lag_ms_p50": round(percentile(samples, 0.50), 2),
            "lag_ms_p99": round(percentile(samples, 0.99), 2),
            "lag_ms_max": round(max(samples, default=0.0), 2),
            "samples": len(samples),
        }

    def reset(self) -> None:
        self.samples.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
