"""Adaptive rendition choice for one viewer: feedback in, rung out (pure, ``now`` passed in).

Inputs are what a WebRTC receiver tells its sender: REMB (the receiver's estimate of the
bandwidth it has) and receiver reports (the fraction of packets lost). Moving down is quick,
because a viewer over its bandwidth stalls; moving up waits for several seconds of clear
headroom, so a viewer does not flap between rungs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RungRate:
    """A rung as the ABR sees it: its name and the bitrate it needs."""

    name: str
    kbps: int


class AbrPolicy:
    """Owns one viewer's adaptive choice among ``rungs`` (any order; sorted high to low here).

    ``on_remb`` / ``on_loss`` feed it; each returns the new rung name when the choice changes,
    else None.
    """

    def __init__(
        self,
        rungs: Sequence[RungRate],
        *,
        start: str | None = None,
        down_loss: float = 0.05,
        up_loss: float = 0.02,
        up_headroom: float = 1.3,
        up_hold_s: float = 6.0,
        down_hold_s: float = 1.0,
        remb_window_s: float = 1.5,
    ) -> None:
        if not rungs:
            raise ValueError("an ABR policy needs at least one rung")
        self.rungs = sorted(rungs, key=lambda r: r.kbps, reverse=True)
        names = [r.name for r in self.rungs]
        self.current = start if start in names else self.rungs[len(self.rungs) // 2].name
        self._down_loss = down_loss
        self._up_loss = up_loss
        self._up_headroom = up_headroom
        self._up_hold_s = up_hold_s
        self._down_hold_s = down_hold_s
        self._remb_window_s = remb_window_s
        self._rembs: list[tuple[float, float]] = []  # (at, bps), newest last
        self._loss = 0.0
        self._clear_since: float | None = None
        self._last_change: float | None = None

    def _index(self) -> int:
        return next(i for i, r in enumerate(self.rungs) if r.name == self.current)

    def estimate_bps(self, now: float) -> float | None:
        """The lowest REMB of the last window: the conservative view of the viewer's bandwidth."""
        self._rembs = [(at, bps) for at, bps in self._rembs if now - at <= self._remb_window_s]
        return min((bps for _, bps in self._rembs), default=None)

    def on_remb(self, bps: float, now: float) -> str | None:
        self._rembs.append((now, bps))
        return self._decide(now)

    def on_loss(self, fraction: float, now: float) -> str | None:
        self._loss = 0.5 * self._loss + 0.5 * max(0.0, min(1.0, fraction))
        return self._decide(now)

    def set_rungs(self, rungs: Sequence[RungRate], now: float) -> str:
        """The stream's ladder changed (new source size): keep the choice if it still exists."""
        self.rungs = sorted(rungs, key=lambda r: r.kbps, reverse=True)
        if self.current not in [r.name for r in self.rungs]:
            self.current = self.rungs[len(self.rungs) // 2].name
            self._last_change = now
        return self.current

    def _decide(self, now: float) -> str | None:
        index = self._index()
        estimate = self.estimate_bps(now)
        need = self.rungs[index].kbps * 1000
        can_change = self._last_change is None or now - self._last_change >= self._down_hold_s
        too_little = estimate is not None and estimate < need
        if (too_little or self._loss > self._down_loss) and index < len(self.rungs) - 1:
            self._clear_since = None
            if not can_change:
                return None
            target = index + 1
            if estimate is not None:
                # Go straight to the highest rung that fits the estimate, with 10 % to spare.
                fits = [i for i, r in enumerate(self.rungs) if r.kbps * 1000 <= estimate * 0.9]
                target = max(target, fits[0] if fits else len(self.rungs) - 1)
            return self._change(target, now)
        if index == 0:
            self._clear_since = None
            return None
        higher = self.rungs[index - 1].kbps * 1000
        clear = (estimate is None or estimate >= higher * self._up_headroom) and self._loss < self._up_loss
        if not clear:
            self._clear_since = None
            return None
        if self._clear_since is None:
            self._clear_since = now
            return None
        if now - self._clear_since >= self._up_hold_s:
            self._clear_since = now
            return self._change(index - 1, now)
        return None

    def _change(self, index: int, now: float) -> str:
        self.current = self.rungs[index].name
        self._last_change = now
        self._clear_since = None
        return self.current
