"""Send-side adaptation of one stream: transport-cc feedback in, estimates, probes, rung choices out.

For each viewer that negotiated transport-cc, its ``SendSideEstimator`` (``relay.media.bwe``,
fed by the fan-out's send log and the feedback handed here) gives the estimate; its
``AbrPolicy`` (``relay.sessions.abr``) decides on it against the rungs' measured bitrates and
asks for probes; this module is the thin asyncio shell around the two: it parses feedback,
applies decisions, paces probe clusters (a few packets every ``PACE_S`` for ``PROBE_S``), keeps
each viewer's repair budget at a share of its estimate, and measures what each rung's encoder
actually produces. One task (``start`` / ``close``) does the pacing and the once-a-second work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay.media.fanout import Fanout
from relay.media.twcc import BadFeedback, parse_feedback
from relay.sessions.rungs import RungChoice

log = logging.getLogger(__name__)

PACE_S = 0.005  # probe packets leave every 5 ms: a cluster is ~20 send groups
PROBE_S = 0.06  # short, so a failed probe queues little (and overflows no queue) on a narrow link
# ... but never fewer bytes than this: a shaper's token bucket (a few kB) passes a short, small
# probe at its full rate, and a 60 ms probe at 900 kbit/s (7 kB) "confirmed" 480p on a
# 600 kbit/s link. 16 kB is 140 ms at that rate, and still 60 ms for 720p's 3.2 Mbit/s.
PROBE_MIN_BYTES = 16_000
WIRE_OVERHEAD = 1.06  # RTP, extension and SRTP bytes on top of the encoder's output
REFUSED_DOWN = 0.10  # repairs refused above this share of packets sent, two seconds running: go down


@dataclass(slots=True)
class _Probe:
    viewer_id: str
    cluster: int
    rung: str
    bps: float
    started: float
    duration: float
    sent: int = 0


class SendSideControl:
    """Owns the probes in flight and the rung rates of one stream's send-side adaptation."""

    def __init__(
        self,
        stream: str,
        fanout: Fanout,
        rungs: RungChoice,
        switch: Callable[[str, str, str], None],
        *,
        rung_bytes: Callable[[], dict[str, int]],
        audio_bps: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._fanout = fanout
        self._rungs = rungs
        self._switch = switch  # (viewer id, rung, why)
        self._rung_bytes = rung_bytes
        self._audio_bps = audio_bps
        self._clock = clock
        self._probes: dict[str, _Probe] = {}  # by viewer
        self._clusters: dict[int, tuple[str, str]] = {}  # cluster -> (viewer, rung), until its result
        self._next_cluster = 1
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_bytes: tuple[float, dict[str, int]] | None = None
        self.rates: dict[str, float] = {}  # bps each rung costs on a viewer's link (video + audio)
        self._refused_seen: dict[str, tuple[int, int]] = {}  # viewer -> (refused, packets) a second ago
        self._pressure: set[str] = set()  # viewers whose repairs were refused in the last two seconds
        self._strained: set[str] = set()  # ... in the last second
        self.bad_feedback = 0
        self.feedback = 0
        self.probes_ok = 0  # probe results, over every viewer the stream ever had
        self.probes_failed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"send-side {self._stream}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def forget(self, viewer_id: str) -> None:
        self._probes.pop(viewer_id, None)
        self._refused_seen.pop(viewer_id, None)
        self._pressure.discard(viewer_id)
        self._strained.discard(viewer_id)

    # ---- feedback --------------------------------------------------------------------------
    def on_tcc(self, viewer_id: str, fci: bytes) -> None:
        """One transport-cc feedback packet from a viewer (never trusted, never raises).

        Every transport-cc viewer sends 10-20 a second: until the estimator has walked what it
        holds, this is a parse and an append (see ``SendSideEstimator.on_feedback``)."""
        tracks = self._fanout.tracks(viewer_id)
        bwe = None if tracks is None else tracks.video.bwe
        if tracks is None or bwe is None:
            return
        try:
            feedback = parse_feedback(fci)
        except BadFeedback:
            self.bad_feedback += 1
            return
        self.feedback += 1
        now = self._clock()
        results = bwe.on_feedback(feedback, now)
        if results is None:  # held, to be walked with the next (see SendSideEstimator.on_feedback)
            return
        abr = self._rungs.abr_of(viewer_id)
        if abr is None:
            return
        for result in results:
            where = self._clusters.pop(result.cluster, None)
            if where is None:
                continue
            ok = abr.on_probe(where[1], result.bps, now)
            if ok:
                self.probes_ok += 1
            else:
                self.probes_failed += 1
            log.debug(
                "viewer %s/%s: probe for %s at %.0f kbit/s: sent %.0f, arrived %s -> %s",
                self._stream, viewer_id[:8], where[1], result.target_bps / 1000, result.sent_bps / 1000,
                "?" if result.received_bps is None else f"{result.received_bps / 1000:.0f}",
                "confirmed" if ok else "not confirmed",
            )  # fmt: skip
        estimate = bwe.estimate_bps
        if estimate is None:
            return
        tracks.video.repair.set_rate(estimate, now)
        if not self._rungs.is_auto(viewer_id) or self._fanout.is_switching(viewer_id):
            return
        congested = bwe.congested(now)
        decision = abr.on_estimate(
            estimate,
            bwe.loss,
            now,
            repairs_refused=viewer_id in self._pressure,
            congested=congested,
            delivered_bps=bwe.delivered_bps(),
            acked_bps=bwe.acked_bps,
        )
        decision = self._rungs.auto_decision(viewer_id, decision)
        if decision is not None:
            self._pressure.discard(viewer_id)
            self._probes.pop(viewer_id, None)
            self._switch(viewer_id, decision, abr.reason)
            return
        if viewer_id not in self._probes and bwe.signal != "overuse":
            wanted = abr.probe_target(bwe.loss, now)
            if wanted is not None:
                self.start_probe(viewer_id, wanted[0], wanted[1], now)

    def start_probe(self, viewer_id: str, rung: str, bps: float, now: float) -> None:
        """Probe ``viewer_id``'s path for ``rung`` at ``bps`` from now (its ABR asks; the bench too)."""
        tracks = self._fanout.tracks(viewer_id)
        if tracks is None or tracks.video.bwe is None:
            return
        cluster = self._next_cluster
        self._next_cluster += 1
        tracks.video.bwe.start_probe(cluster, bps, now)
        duration = max(PROBE_S, PROBE_MIN_BYTES * 8 / bps)
        self._probes[viewer_id] = _Probe(viewer_id, cluster, rung, bps, now, duration)
        self._clusters[cluster] = (viewer_id, rung)
        if len(self._clusters) > 256:  # results that never came (viewer gone): forget the oldest
            del self._clusters[next(iter(self._clusters))]
        log.debug("viewer %s/%s: probing for %s at %.0f kbit/s", self._stream, viewer_id[:8], rung, bps / 1000)
        self._wake.set()

    # ---- the task: probe pacing, once a second the rung rates -------------------------------
    async def _run(self) -> None:
        while True:
            if self._probes:
                await asyncio.sleep(PACE_S)  # pacing, not synchronisation: probes must be spread
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
            now = self._clock()
            self.pace(now)
            if self._last_bytes is None or now - self._last_bytes[0] >= 1.0:
                self._measure(now)

    def pace(self, now: float) -> None:
        """Send what each probe in flight is due by ``now`` (the task calls it every ``PACE_S``)."""
        for viewer_id, probe in list(self._probes.items()):
            elapsed = min(now - probe.started, probe.duration)
            due = int(probe.bps / 8 * elapsed) - probe.sent
            if due > 0:
                sent = self._fanout.probe(viewer_id, due, probe.cluster)
                if sent == 0:  # nothing to copy (switching, left): give this probe up
                    del self._probes[viewer_id]
                    continue
                probe.sent += sent
            if now - probe.started >= probe.duration:
                del self._probes[viewer_id]

    def _measure(self, now: float) -> None:
        """What each rung's encoder produced over the last second (smoothed), plus audio and
        packet overhead: what a rung costs on a viewer's link. And which viewers' repairs were
        refused."""
        current = self._rung_bytes()
        last = self._last_bytes
        self._last_bytes = (now, current)
        if last is not None and now > last[0]:
            elapsed = now - last[0]
            for rung, total in current.items():
                before = last[1].get(rung)
                if before is None or total <= before:  # not encoding (e.g. offline): keep the last rate
                    continue
                bps = (total - before) * 8 / elapsed * WIRE_OVERHEAD + self._audio_bps
                old = self.rates.get(rung)
                self.rates[rung] = bps if old is None else 0.5 * old + 0.5 * bps
            for choice in self._rungs.choices.values():  # once a second, not per feedback packet
                choice.abr.set_actual(self.rates)
        pressure = set()
        strained = set()
        for viewer_id in list(self._rungs.choices):
            tracks = self._fanout.tracks(viewer_id)
            if tracks is None:
                continue
            repair = tracks.video.repair
            now_counts = (repair.refused_budget, tracks.video.packets)
            before_counts = self._refused_seen.get(viewer_id)
            self._refused_seen[viewer_id] = now_counts
            if before_counts is not None:
                refused = now_counts[0] - before_counts[0]
                packets = now_counts[1] - before_counts[1]
                if packets > 0 and refused > REFUSED_DOWN * packets:
                    # One second of refusals follows any loss burst (a probe's, a keyframe's);
                    # two in a row mean the link cannot carry the rung plus its repairs.
                    strained.add(viewer_id)
                    if viewer_id in self._strained:
                        pressure.add(viewer_id)
        self._strained = strained
        self._pressure = pressure

    # ---- introspection -------------------------------------------------------------------
    def viewer_snapshot(self, viewer_id: str) -> dict[str, object]:
        """Per viewer: how it is estimated, what its probes showed, its repairs and switches."""
        tracks = self._fanout.tracks(viewer_id)
        abr = self._rungs.abr_of(viewer_id)
        if tracks is None or abr is None:
            return {}
        out = tracks.video
        bwe = out.bwe
        repair = out.repair
        now = self._clock()
        last = bwe.probes[-1] if bwe is not None and bwe.probes else None
        return {
            "id": viewer_id[:8],
            "rung": self._fanout.rung_of(viewer_id),
            "auto": self._rungs.is_auto(viewer_id),
            "feedback": "transport-cc" if bwe is not None else "remb",
            "estimate_bps": round(bwe.estimate_bps or 0) if bwe is not None else round(abr.estimate_bps(now) or 0),
            "acked_bps": round(bwe.acked_bps or 0) if bwe is not None else None,
            "loss": round(bwe.loss, 4) if bwe is not None else None,
            "reported_lost": f"{bwe.packets_lost}/{bwe.packets_reported}" if bwe is not None else None,
            "delay_signal": bwe.signal if bwe is not None else None,
            "probes_ok": abr.probes_ok,
            "probes_failed": abr.probes_failed,
            "last_probe_bps": None if last is None or last.bps is None else round(last.bps),
            "packets_sent": out.packets,
            "retransmitted": repair.sent,
            "retransmit_refused": repair.refused,
            "retransmit_refused_budget": repair.refused_budget,
            "rung_switches": abr.switches,
        }
