"""Adaptive rendition choice for one viewer: feedback in, rung out (pure, ``now`` passed in).

Two kinds of viewer feed it. Peers without transport-wide feedback (aiortc) give REMB (the
receiver's estimate of the bandwidth it has) and receiver reports (the fraction of packets lost):
``on_remb`` / ``on_loss`` compare them with each rung's nominal rate. Browsers that negotiated
transport-cc get a send-side estimate (``relay.media.bwe``): ``on_estimate`` compares it with
each rung's *actual* bitrate (what its encoder produces, ``set_actual``), stays while the
estimate holds the rung's rate with a margin, goes down at once on loss or a falling estimate,
and goes up only after a probe at the higher rung's rate (``probe_target`` / ``on_probe``) came
back confirmed. Moving down is quick, because a viewer over its bandwidth stalls; moving up
needs evidence, so a viewer does not flap between rungs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RungRate:
    """A rung as the ABR sees it: its name and the bitrate it needs."""

    name: str
    kbps: int


STAY_MARGIN = 1.05  # send-side: stay while the estimate is at least this times the rung's rate
NOMINAL_FLOOR = 0.9  # a rung costs at least this share of its nominal rate, its encoder's cap (see need_bps)
UP_MARGIN = 1.2  # ... and move to a rung only with this much to spare
DEEP_LOW = 0.75  # an estimate this far under the rung's rate moves down at once
LOW_HOLD_S = 0.7  # otherwise it must stay under for this long
UNDER_ACKED = 0.95  # ... and, while nothing is lost, under this share of what arrives
SEND_DOWN_LOSS = 0.10  # loss that transport-cc reports (repairs hide it from the picture, not the link)
UP_HOLD_S = 2.0  # no move up within this long of the last change
# Probes run at this times the higher rung's rate: a browser's arrival times are noisy by 10 %
# and more, and the result must still reach UP_MARGIN.
PROBE_RATE = 1.5
PROBE_FRESH_S = 3.0  # a confirmed probe allows a move up for this long
PROBE_BACKOFF_S = 2.0
PROBE_BACKOFF_MAX_S = 6.0  # so that a lifted limit is found within ~10 s (two moves up)
PROBE_AFTER_UP_S = 2.0
PROBE_RESULT_WAIT_S = 1.5  # a probe's result comes within this (the estimator gives up after ~1 s)
UNDONE_S = 5.0  # a move down this soon after a confirmed move up counts as a failed probe


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
        # send-side mode
        self.actual: dict[str, float] = {}  # bps each rung's encoder produces now
        self._probe_ok: tuple[str, float] | None = None  # (rung confirmed, when)
        self._next_probe_at: float | None = None
        self._probe_backoff_s = PROBE_BACKOFF_S
        self.probes_ok = 0
        self.probes_failed = 0
        self.switches = 0
        self.reason = ""  # why the last change happened (for the debug log)
        self._low_since: float | None = None  # since when the estimate is under the rung's rate
        self._last_up: float | None = None  # when the last probe-confirmed move up happened

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
        self.switches += 1
        return self.current

    # ---- send-side estimate ---------------------------------------------------------------------
    def need_bps(self, index: int) -> float:
        """What rung ``index`` costs: its measured rate, or its nominal rate before there is one;
        never under ``NOMINAL_FLOOR`` of the nominal rate, which is its encoder's rate cap. An
        encoder produces less on a still scene (or when its CPU is short) and up to its cap on
        the next motion: a rung chosen on the quiet rate would overflow the link then (seen: the
        demo's 480p measured 450 kbit/s, went up on a 600 kbit/s link and froze)."""
        rung = self.rungs[index]
        nominal = rung.kbps * 1000.0
        actual = self.actual.get(rung.name)
        return nominal if actual is None else max(actual, NOMINAL_FLOOR * nominal)

    def set_actual(self, rates: dict[str, float]) -> None:
        """The rates the encoders produce now (bps per rung; a rung with none keeps its nominal)."""
        self.actual = {name: bps for name, bps in rates.items() if bps > 0}

    def on_estimate(
        self,
        estimate_bps: float,
        loss: float,
        now: float,
        *,
        repairs_refused: bool = False,
        congested: bool = True,
        delivered_bps: float | None = None,
        acked_bps: float | None = None,
    ) -> str | None:
        """A send-side estimate and the loss it saw: the new rung when the choice changes, else None.

        ``repairs_refused``: the viewer's retransmission budget refused repairs lately, i.e. its
        link cannot carry this rung plus the repairs it needs, which is a reason to go down.
        ``congested``: the estimator saw a queue build or loss lately. Without that, an estimate
        under the rung's rate only says the encoder sent less for a while (the estimate follows
        what is acknowledged when nothing is in the way), which is no reason to go down.
        ``acked_bps``: what arrived over the last half second. Without loss, an estimate under
        the rung's rate moves the viewer only while it is also under this (a queue building).
        ``delivered_bps``: what arrived over the last quarter second. Under heavy loss the queue
        in front of the link is full and that is the link's rate: the rung aimed for fits it.
        """
        index = self._index()
        need = self.need_bps(index)
        lowest = len(self.rungs) - 1
        since_change = None if self._last_change is None else now - self._last_change
        if self._last_up is not None and now - self._last_up >= UNDONE_S:
            self._last_up = None  # the move up held: probing is cheap again
            self._probe_backoff_s = PROBE_BACKOFF_S
        low = congested and estimate_bps < need * STAY_MARGIN
        if low and acked_bps is not None and loss <= self._up_loss:
            # Nothing lost and the estimate not under what arrives: the link carries what is sent
            # (an estimate bouncing between 85 % of the acknowledged rate and the rate itself is a
            # noisy receiver's clock, seen in Chromium on a busy machine, not a queue that builds;
            # a queue that builds keeps the estimate under it).
            low = estimate_bps < acked_bps * UNDER_ACKED
        if not low:
            self._low_since = None
        elif self._low_since is None:
            self._low_since = now
        # A short dip (one delay blip) is not a reason to drop a rung; a deep one, loss, or a dip
        # that lasts is.
        sustained = low and (estimate_bps < need * DEEP_LOW or now - (self._low_since or now) >= LOW_HOLD_S)
        if index < lowest and (sustained or loss > SEND_DOWN_LOSS or repairs_refused):
            if since_change is not None and since_change < self._down_hold_s:
                return None
            self._low_since = None
            # Under heavy loss the estimate lags what arrives: aim for what got through, and for
            # no more than the link delivered lately (a probe may have lifted the estimate).
            usable = estimate_bps
            if loss > SEND_DOWN_LOSS:
                usable *= 1 - loss
                if delivered_bps is not None:
                    usable = min(usable, delivered_bps)
            fits = [i for i in range(len(self.rungs)) if self.need_bps(i) * UP_MARGIN <= usable]
            target = max(index + 1, fits[0] if fits else lowest)
            self.reason = (
                f"estimate {estimate_bps / 1000:.0f} kbit/s, {self.current} needs {need / 1000:.0f}, "
                f"loss {loss:.1%}{', repairs refused' if repairs_refused else ''}"
            )
            self._probe_ok = None
            if self._last_up is not None and now - self._last_up < UNDONE_S:
                # The rung a probe confirmed did not hold: as good as a failed probe.
                self._probe_backoff_s = min(self._probe_backoff_s * 2, PROBE_BACKOFF_MAX_S)
            self._next_probe_at = now + self._probe_backoff_s
            self._last_up = None
            return self._change(target, now)
        if index == 0:
            return None
        higher = self.rungs[index - 1].name
        confirmed = (
            self._probe_ok is not None and self._probe_ok[0] == higher and now - self._probe_ok[1] < PROBE_FRESH_S
        )
        if confirmed and estimate_bps >= self.need_bps(index - 1) * UP_MARGIN and loss < self._up_loss:
            if since_change is not None and since_change < UP_HOLD_S:
                return None
            self.reason = (
                f"probe confirmed {estimate_bps / 1000:.0f} kbit/s for {higher} ({self.need_bps(index - 1) / 1000:.0f})"
            )
            self._probe_ok = None
            self._next_probe_at = now + PROBE_AFTER_UP_S
            self._last_up = now
            return self._change(index - 1, now)
        return None

    def probe_target(self, loss: float, now: float) -> tuple[str, float] | None:
        """The rung to probe for and the rate to probe at, when a probe is due (else None).

        Never while the viewer loses packets, never at the top rung, and after a failed probe
        only once its back-off (doubling up to ``PROBE_BACKOFF_MAX_S``) has passed. A target
        handed out counts as a probe started: the next comes only after its result (``on_probe``)
        or ``PROBE_RESULT_WAIT_S``; probes back to back would add up to a queue.
        """
        index = self._index()
        if index == 0 or loss >= self._up_loss:
            return None
        if self._next_probe_at is not None and now < self._next_probe_at:
            return None
        if self._last_change is not None and now - self._last_change < UP_HOLD_S:
            return None
        higher = self.rungs[index - 1].name
        # Handed out counts as started: no second probe until this one's result (or its time).
        self._next_probe_at = now + PROBE_RESULT_WAIT_S
        return higher, self.need_bps(index - 1) * PROBE_RATE

    def on_probe(self, rung: str, result_bps: float | None, now: float) -> bool:
        """A probe for ``rung`` came back; True if it confirmed the rung fits."""
        index = next((i for i, r in enumerate(self.rungs) if r.name == rung), None)
        ok = index is not None and result_bps is not None and result_bps >= self.need_bps(index) * UP_MARGIN
        if ok:
            self.probes_ok += 1
            self._probe_ok = (rung, now)
            # The back-off resets once the move it allows has held (on_estimate), not here.
            self._next_probe_at = now + PROBE_BACKOFF_S
        else:
            self.probes_failed += 1
            self._next_probe_at = now + self._probe_backoff_s
            self._probe_backoff_s = min(self._probe_backoff_s * 2, PROBE_BACKOFF_MAX_S)
        return ok
