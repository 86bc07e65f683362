"""When an edge stops pulling a stream (pure: no I/O, time passed in).

A pull costs the origin a viewer's worth of sending for every rung, so an edge drops it once
nobody watches; but viewers come and go (a reload, a player that reconnects through the
redirect), and pulling again costs a round trip and a keyframe on every rung. So a pull stays
until its stream has had no viewer for ``grace_s``.
"""

from __future__ import annotations


class PullLinger:
    """Owns, per pulled stream, since when it has had no viewer."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._idle_since: dict[str, float] = {}
        self._pulled: set[str] = set()

    def started(self, stream: str, now: float) -> None:
        """A pull began (its first viewer is arriving): it is not idle."""
        self._pulled.add(stream)
        self._idle_since.pop(stream, None)

    def pulled(self) -> set[str]:
        return set(self._pulled)

    def observe(self, viewers: dict[str, int], now: float) -> list[str]:
        """The viewer count of every pulled stream now; returns the pulls to drop (and forgets
        them). A stream missing from ``viewers`` counts as having none."""
        drop = []
        for stream in sorted(self._pulled):
            if viewers.get(stream, 0) > 0:
                self._idle_since.pop(stream, None)
                continue
            since = self._idle_since.setdefault(stream, now)
            if now - since >= self.grace_s:
                drop.append(stream)
        for stream in drop:
            self._pulled.discard(stream)
            self._idle_since.pop(stream, None)
        return drop
