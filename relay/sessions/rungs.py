"""Which rung each viewer of a stream watches (pure: no I/O, ``now`` passed in).

A stream's ladder is configured, but which rungs exist at a moment depends on the source: rungs
above the source size are not encoded, and a new publisher (or OBS changing resolution) changes
the set. A viewer asks for a fixed rung or ``auto``; a fixed wish for a rung that is not encoded
gets the nearest rung below it (never a larger picture than asked for), and every viewer is
re-aimed when the set changes. ``auto`` viewers follow their own ``AbrPolicy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from relay.config import StreamConfig, TranscodeConfig
from relay.errors import BadRequest
from relay.sessions.abr import AbrPolicy, RungRate
from transcode.frames import VP8, VP8_SUFFIX
from transcode.rendition import SOURCE, Rendition

AUTO = "auto"
START_RUNG = "480p"  # where an auto viewer starts before any feedback, when the stream has it


def rung_for_codec(rung: str, codec: str) -> str:
    """The name of ``rung``'s rendition in ``codec``: "480p" for H.264, "480p-vp8" for VP8.

    RungChoice and the ABR decide in ladder rungs; a viewer without H.264 watches the VP8
    rendition of the rung chosen for it, which to the fan-out is just another rung.
    """
    return rung + VP8_SUFFIX if codec == VP8 and not rung.endswith(VP8_SUFFIX) else rung


def ladder_rung(name: str) -> str:
    """The ladder rung a rendition name belongs to ("480p-vp8" -> "480p")."""
    return name.removesuffix(VP8_SUFFIX)


def ladder_for(stream: StreamConfig, transcode: TranscodeConfig) -> list[Rendition]:
    """The stream's rungs (its own ladder or the global one), capped at the configured size in
    either orientation (a rung is named by its short side, so 720x1280 is as big as 1280x720)."""
    gop = max(1, round(transcode.gop_s * transcode.fps))
    cap_long, cap_short = max(transcode.max_width, transcode.max_height), min(transcode.max_width, transcode.max_height)
    rungs = [
        Rendition(name, width, height, kbps, transcode.fps, gop)
        for name, width, height, kbps in (stream.ladder or transcode.ladder)
        if max(width, height) <= cap_long and min(width, height) <= cap_short
    ]
    if not rungs:
        raise ValueError(f"stream {stream.name}: no ladder rung fits {transcode.max_width}x{transcode.max_height}")
    if stream.passthrough == "auto":
        # ABR's guess at the publisher's rate: twice the top rung's (OBS streams run 2.5-6 Mbit/s).
        top = max(rungs, key=lambda r: r.width * r.height)
        rungs.insert(0, Rendition(SOURCE, top.width, top.height, 2 * top.video_kbps, transcode.fps, gop))
    return rungs


class ViewerChoice:
    """A viewer's rendition wish: a fixed rung, or ``auto`` with its own ABR policy."""

    __slots__ = ("abr", "fixed")

    def __init__(self, fixed: str | None, abr: AbrPolicy) -> None:
        self.fixed = fixed
        self.abr = abr

    @property
    def auto(self) -> bool:
        return self.fixed is None


class RungChoice:
    """Owns a stream's view of its rungs: the ladder, which rungs are encoded, and every viewer's
    choice; answers which rung a viewer should be on."""

    def __init__(self, ladder: Sequence[Rendition]) -> None:
        self.names = [r.name for r in ladder]  # highest first
        self.kbps = {r.name: r.video_kbps for r in ladder}
        self._encoded: list[str] = []
        self.choices: dict[str, ViewerChoice] = {}

    def available(self) -> list[str]:
        """Rungs being encoded now, highest first; the whole ladder while nothing is encoded."""
        return list(self._encoded) or list(self.names)

    def rates(self) -> list[RungRate]:
        return [RungRate(name, self.kbps[name]) for name in self.available()]

    def check(self, requested: str) -> str:
        """``requested`` if it names a rung of the ladder or ``auto``; BadRequest otherwise."""
        if requested != AUTO and requested not in self.names:
            raise BadRequest(f"unknown rendition {requested!r}: choose auto or one of {', '.join(self.names)}")
        return requested

    def nearest(self, wanted: str) -> str:
        """``wanted`` if it is encoded, else the next lower encoded rung, else the lowest."""
        available = self.available()
        if wanted in available:
            return wanted
        below = self.names[self.names.index(wanted) + 1 :] if wanted in self.names else []
        return next((n for n in below if n in available), available[-1])

    def target(self, viewer_id: str) -> str | None:
        """The rung ``viewer_id`` should watch now (None for an unknown viewer)."""
        choice = self.choices.get(viewer_id)
        if choice is None:
            return None
        return choice.abr.current if choice.fixed is None else self.nearest(choice.fixed)

    def add(self, viewer_id: str, requested: str) -> str:
        """A new viewer asking for ``requested`` (checked); returns the rung it starts on."""
        self.check(requested)
        start = START_RUNG if START_RUNG in self.available() else None
        fixed = None if requested == AUTO else requested
        self.choices[viewer_id] = ViewerChoice(fixed, AbrPolicy(self.rates(), start=start))
        target = self.target(viewer_id)
        assert target is not None
        return target

    def remove(self, viewer_id: str) -> None:
        self.choices.pop(viewer_id, None)

    def choose(self, viewer_id: str, requested: str) -> str | None:
        """The viewer asks for another rung or ``auto`` (checked); returns the rung to watch."""
        self.check(requested)
        choice = self.choices.get(viewer_id)
        if choice is None:
            return None
        choice.fixed = None if requested == AUTO else requested
        return self.target(viewer_id)

    def set_encoded(self, names: Iterable[str], now: float) -> dict[str, str]:
        """The encoded rungs changed (a new source size): every viewer's rung, re-aimed."""
        self._encoded = [n for n in self.names if n in set(names)]
        rates = self.rates()
        for choice in self.choices.values():
            choice.abr.set_rungs(rates, now)
        return {viewer_id: rung for viewer_id in self.choices if (rung := self.target(viewer_id)) is not None}

    def auto_decision(self, viewer_id: str, decision: str | None) -> str | None:
        """An ABR decision for ``viewer_id``: the rung to move to, if the viewer is on auto."""
        choice = self.choices.get(viewer_id)
        if decision is None or choice is None or not choice.auto:
            return None
        return decision

    def is_auto(self, viewer_id: str) -> bool:
        choice = self.choices.get(viewer_id)
        return choice is not None and choice.auto

    def abr_of(self, viewer_id: str) -> AbrPolicy | None:
        choice = self.choices.get(viewer_id)
        return None if choice is None else choice.abr
