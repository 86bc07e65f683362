"""Send-side bandwidth estimation for one viewer (pure: no I/O, ``now`` passed in).

A receive-side estimate (REMB) stays near what the receiver gets, so a sender that only listens
to it never learns that a link could carry more. With transport-wide feedback the sender knows,
for every packet it stamped, when it left and when (or whether) it arrived, and estimates for
itself, in the spirit of Google's congestion control (draft-ietf-rmcat-gcc), written here from
its ideas, not its code:

- acknowledged rate: the bytes the viewer received over the last half second of arrivals;
- delay gradient: packets sent together form a group; the growth of one-way delay between
  groups, accumulated and smoothed, gives a trend whose slope says whether a queue is building
  (overuse) against a threshold that adapts to the link's normal jitter;
- loss: the fraction of stamped packets reported lost;
- probes: a cluster of padding sent at a chosen rate; the rate at which it arrived is what the
  link carries at least, and is the only way the estimate rises well above what is sent.

The estimate multiplies up slowly while the link is clear (and is never below the acknowledged
rate while no queue builds), drops to 85 % of the acknowledged rate on overuse, and shrinks with
loss over 10 % (packets a probe's queue dropped, probe or media, do not count: they are the
probe's answer);
it never exceeds ``CAP`` times the larger of the acknowledged rate and a recent probe's result
(the property the unit tests hold it to).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul

from relay.media.twcc import DELTA_US, NOT_RECEIVED, TccFeedback, merged

CAP = 1.5  # the estimate stays within this factor of what was acknowledged or probed
ACKED_WINDOW_S = 0.5
CONGESTED_S = 0.5  # see SendSideEstimator.congested
DELIVERED_WINDOW_S = 0.25  # what arrived lately (delivered_bps): the link's rate while it drops packets
GROUP_S = 0.005  # packets sent within 5 ms of a group's first are one group
TREND_GROUPS = 20
SMOOTHING = 0.9
TREND_GAIN = 4.0
THRESHOLD_START_MS = 12.5
THRESHOLD_MIN_MS, THRESHOLD_MAX_MS = 6.0, 600.0
THRESHOLD_UP, THRESHOLD_DOWN = 0.0087, 0.039  # per ms of elapsed time, as in the draft's adaptation
DECREASE = 0.85
INCREASE_PER_S = 0.08
LOSS_HIGH, LOSS_LOW = 0.10, 0.02
LOSS_MIN_PACKETS = 20
PROBE_VALID_S = 5.0  # how long a probe's result lifts the cap (long enough for a rung switch)
PROBE_MIN_PACKETS = 5
PROBE_MIN_RECEIVED = 0.8
PROBE_TIMEOUT_S = 1.0
# The send log keeps 256-512 batches (3-5 s of frames, repairs and probe packets); feedback
# comes within a round trip, so older numbers are never looked up.
KEEP_BATCHES, TRIM_AT = 256, 512
HOLD_S = 0.2  # clean feedback (no loss, no probe out) is walked at most this often ...
HOLD_MAX = 8  # ... or once this many packets of it wait
PROBE_SHADOW_S = 0.25  # media sent this long after a probe packet may be lost to the probe's queue
SHADOW = -1  # the cluster tag of such media: counted for rate and delay, not for loss


@dataclass(slots=True)
class ProbeResult:
    """What one probe cluster showed: the rate it was sent at and the rate it arrived at."""

    cluster: int
    target_bps: float
    sent_bps: float
    received_bps: float | None  # None: too little of it arrived to say
    at: float

    @property
    def bps(self) -> float | None:
        """What the link carried at least (None if the probe says nothing)."""
        if self.received_bps is None:
            return None
        return min(self.sent_bps, self.received_bps)


class _Cluster:
    __slots__ = ("first_arrival", "first_send", "first_size", "last_arrival", "last_send", "packets",
                 "received", "received_packets", "sent", "slices", "started", "target_bps")  # fmt: skip

    def __init__(self, target_bps: float, now: float) -> None:
        self.target_bps = target_bps
        self.started = now
        self.first_send: float | None = None
        self.last_send = 0.0
        self.sent = 0.0  # bytes, all packets
        self.packets = 0
        self.first_arrival: float | None = None
        self.first_size = 0.0  # bytes of the first arrival (not part of the rate's numerator)
        self.last_arrival = 0.0
        self.received = 0.0  # bytes arrived, the first arrival's included
        self.received_packets = 0
        self.slices: list[tuple[float, float, float]] = []  # (sent at, last arrival, bytes) per slice


_NO_RESULTS: tuple[ProbeResult, ...] = ()
TICK_S = DELTA_US / 1e6


class SendSideEstimator:
    """Owns one viewer's send log (transport-wide numbers) and its bandwidth estimate.

    The fan-out calls ``sent`` once per batch of packets (a frame, a probe slice, a repair);
    ``on_feedback`` takes each parsed transport-cc packet. ``estimate_bps`` is None until the
    first half second of arrivals has been acknowledged.

    Both run for every transport-cc viewer, so both work per batch, never per packet: a batch's
    packets share one send time and one size, and the feedback's compact form (``TccFeedback``)
    lets each batch's received count, bytes and last arrival be read with a few C-level calls.
    """

    def __init__(self, start_bps: float | None = None) -> None:
        # The send log: one entry per batch, in number order (batches are contiguous in numbers).
        self._firsts: list[int] = []  # first transport-wide number of each batch, increasing
        self._batches: list[tuple[int, int, float, int, float]] = []  # (first, count, sent_at, cluster, size)
        self._highest = -1  # the highest number sent
        self._reported = -1  # every number up to this one has been reported on (received or lost)
        self._acked: deque[tuple[float, float]] = deque()  # (arrival s, bytes), per batch
        self._acked_bytes = 0.0
        self._newest_arrival: float | None = None
        self._oldest_arrival: float | None = None
        # delay gradient
        self._group: tuple[float, float, float] | None = None  # (first send, last send, last arrival)
        self._prev_group: tuple[float, float] | None = None  # (send, arrival) of the previous group
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._trend_x: deque[float] = deque(maxlen=TREND_GROUPS)  # ms since the first arrival
        self._trend_y: deque[float] = deque(maxlen=TREND_GROUPS)  # smoothed accumulated delay, ms
        self._trend_new = False
        self._first_arrival_ms: float | None = None
        self._threshold = THRESHOLD_START_MS
        self._last_threshold_at: float | None = None
        self._overuse_since: float | None = None
        self.signal = "normal"  # "overuse", "underuse" or "normal"
        # loss
        self._lost = 0
        self._counted = 0
        self.loss = 0.0
        self.packets_lost = 0  # media packets reported lost, and reported at all (probes aside)
        self.packets_reported = 0
        # rate
        self._estimate = start_bps
        self._last_update: float | None = None
        self._last_decrease: float | None = None
        self._clusters: dict[int, _Cluster] = {}
        self.probes: list[ProbeResult] = []  # newest last, at most 20
        self._probe_bps: tuple[float, float] | None = None  # (bps, at) of the last useful probe
        self._shadow_until = 0.0
        self._held: list[TccFeedback] = []  # feedback not walked yet (see on_feedback)
        self.feedback_packets = 0

    # ---- sending ----------------------------------------------------------------------------
    def sent(self, first: int, count: int, octets: int, now: float, cluster: int = 0) -> None:
        """Packets ``first`` .. ``first + count - 1`` (transport-wide numbers) left now."""
        if count <= 0:
            return
        if cluster:
            self._shadow_until = now + PROBE_SHADOW_S
        elif now < self._shadow_until:
            cluster = SHADOW
        self._firsts.append(first)
        self._batches.append((first, count, now, cluster, octets / count))
        self._highest = first + count - 1
        if cluster > 0:
            probe = self._clusters.get(cluster)
            if probe is not None:
                if probe.first_send is None:
                    probe.first_send = now
                probe.last_send = now
                probe.sent += octets
                probe.packets += count
        if len(self._batches) >= TRIM_AT:
            self._trim()

    def _trim(self) -> None:
        # Amortised: one cut every TRIM_AT - KEEP_BATCHES batches, not a shift per batch.
        cut = len(self._batches) - KEEP_BATCHES
        del self._firsts[:cut], self._batches[:cut]

    def start_probe(self, cluster: int, target_bps: float, now: float) -> None:
        """Packets sent with ``cluster`` from now on belong to a probe at ``target_bps``."""
        self._clusters[cluster] = _Cluster(target_bps, now)

    def logged(self, number: int) -> tuple[float, float, int] | None:
        """What the send log holds on packet ``number``: (sent at, bytes, cluster), or None."""
        i = bisect.bisect_right(self._firsts, number) - 1
        if i < 0:
            return None
        first, count, at, cluster, size = self._batches[i]
        return (at, size, cluster) if number < first + count else None

    def _unwrap(self, seq16: int) -> int:
        return self._highest - ((self._highest - seq16) & 0xFFFF)

    # ---- feedback ---------------------------------------------------------------------------
    def on_feedback(self, feedback: TccFeedback, now: float) -> Sequence[ProbeResult] | None:
        """One transport-cc packet: arrivals, losses, the delay trend, probes, the estimate.

        A receiver reports every 50-100 ms. While nothing is lost and no probe is out, feedback
        is held and walked together once ``HOLD_S`` has passed since the last update (the same
        arrivals, one walk and one update instead of several): then None is returned, as
        nothing changed. Otherwise the probe results completed (usually none). A packet already
        reported on (a repeated or overlapping feedback) is not counted again.
        """
        self.feedback_packets += 1
        held = self._held
        held.append(feedback)
        last = self._last_update
        if (
            last is not None
            and now - last < HOLD_S
            and not self._clusters
            and NOT_RECEIVED not in feedback.status
            and len(held) < HOLD_MAX
        ):
            return None
        self._held = []
        for one in merged(held):
            self._walk(one)
        if self._trend_new:
            self._trend_new = False
            self._detect(now)
        results = self._evaluate_probes(now) if self._clusters else _NO_RESULTS
        self._update(now)
        return results

    def _walk(self, feedback: TccFeedback) -> None:
        """Arrivals and losses of one (merged) feedback, batch by batch of the send log.

        Per batch (a frame, a probe slice, a NACK report's repairs) a few C-level calls: count
        its losses in the status bytes, slice its arrivals, take their first and last; the
        acknowledged window is trimmed once per walk."""
        status = feedback.status
        ticks = feedback.ticks
        total = len(status)
        start = self._unwrap(feedback.base_seq)
        pos = max(0, self._reported + 1 - start)  # skip what earlier feedback reported
        received = pos - status.count(NOT_RECEIVED, 0, pos) if pos else 0  # index into ticks
        if start + total - 1 > self._reported:
            self._reported = start + total - 1
        batches = self._batches
        count_of = len(batches)
        b = bisect.bisect_right(self._firsts, start + pos) - 1
        if b < 0:
            b = 0
        lost = counted = 0
        acked = self._acked
        acked_bytes = self._acked_bytes
        newest = self._newest_arrival if self._newest_arrival is not None else float("-inf")
        group = self._group
        while pos < total and b < count_of:
            first, count, sent_at, cluster, size = batches[b]
            lo = first - start
            hi = lo + count
            if hi <= pos:
                b += 1
                continue
            if lo > pos:  # numbers no longer (or never) in the log: step over their arrivals
                stop = lo if lo < total else total
                received += (stop - pos) - status.count(NOT_RECEIVED, pos, stop)
                pos = stop
                continue
            stop = hi if hi < total else total
            span = stop - pos
            missing = status.count(NOT_RECEIVED, pos, stop)
            got = span - missing
            pos = stop
            b += 1
            if not cluster:
                # A probe overflowing a queue (and the media behind it) is the probe's answer: that
                # probe fails and backs off; it is no reason to leave the rung.
                lost += missing
                counted += span
            if not got:
                continue
            if cluster > 0 or got == 1:
                part = ticks[received : received + got]
                last = max(part) * TICK_S
                early = min(part) * TICK_S
            else:
                # A media batch: its last packet's arrival (a reordered one inside it changes
                # the group's arrival by less than the batch took to arrive).
                last = ticks[received + got - 1] * TICK_S
                early = ticks[received] * TICK_S
            received += got
            octets = got * size
            acked.append((last, octets))
            acked_bytes += octets
            if last > newest:
                newest = last
            if self._oldest_arrival is None:
                self._oldest_arrival = early
            if cluster > 0:
                self._probe_arrivals(cluster, got, octets, size, early, last, sent_at)
            if group is None or sent_at - group[0] > GROUP_S:
                if group is not None:
                    self._close_group(group[1], group[2])
                group = (sent_at, sent_at, last)
            else:
                group = (group[0], max(group[1], sent_at), max(group[2], last))
        self._group = group
        if acked:
            self._newest_arrival = newest
            while acked and acked[0][0] < newest - ACKED_WINDOW_S:
                acked_bytes -= acked.popleft()[1]
        self._acked_bytes = acked_bytes
        self._lost += lost
        self._counted += counted
        self.packets_lost += lost
        self.packets_reported += counted
        if self._counted >= LOSS_MIN_PACKETS:
            self.loss = self._lost / self._counted
            self._lost = self._counted = 0

    def _probe_arrivals(
        self, cluster: int, got: int, octets: float, size: float, early: float, last: float, sent_at: float
    ) -> None:
        probe = self._clusters.get(cluster)
        if probe is None:
            return
        probe.slices.append((sent_at, last, octets))
        probe.received_packets += got
        probe.received += octets
        if probe.first_arrival is None or early < probe.first_arrival:
            probe.first_arrival = early
            probe.first_size = size
        if last > probe.last_arrival:
            probe.last_arrival = last

    def _close_group(self, send: float, arrival: float) -> None:
        prev = self._prev_group
        self._prev_group = (send, arrival)
        if prev is None:
            return
        if arrival < prev[1]:  # reordered: no gradient from it
            return
        delta_ms = ((arrival - prev[1]) - (send - prev[0])) * 1000
        self._accumulated += delta_ms
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        arrival_ms = arrival * 1000
        if self._first_arrival_ms is None:
            self._first_arrival_ms = arrival_ms
        self._trend_x.append(arrival_ms - self._first_arrival_ms)
        self._trend_y.append(self._smoothed)
        self._trend_new = True

    def _detect(self, now: float) -> None:
        """The overuse detector, once per feedback packet on the newest trend (every group of
        one feedback shares its ``now``, so evaluating each would add nothing)."""
        if len(self._trend_x) < TREND_GROUPS // 2:
            return
        modified = min(len(self._trend_x), 60) * _slope(self._trend_x, self._trend_y) * TREND_GAIN
        self._adapt_threshold(modified, now)
        if modified > self._threshold:
            if self._overuse_since is None:
                self._overuse_since = now
            # Overuse only once it lasts (two feedback packets, 10 ms), so one late group is not
            # a signal.
            self.signal = "overuse" if now - self._overuse_since >= 0.01 or self.signal == "overuse" else "normal"
        elif modified < -self._threshold:
            self._overuse_since = None
            self.signal = "underuse"
        else:
            self._overuse_since = None
            self.signal = "normal"

    def _adapt_threshold(self, modified: float, now: float) -> None:
        last = self._last_threshold_at
        self._last_threshold_at = now
        if last is None or abs(modified) > self._threshold + 15:  # a spike: do not chase it
            return
        k = THRESHOLD_DOWN if abs(modified) < self._threshold else THRESHOLD_UP
        elapsed_ms = min((now - last) * 1000, 100.0)
        self._threshold += k * (abs(modified) - self._threshold) * elapsed_ms
        self._threshold = max(THRESHOLD_MIN_MS, min(THRESHOLD_MAX_MS, self._threshold))

    def _evaluate_probes(self, now: float) -> list[ProbeResult]:
        done: list[ProbeResult] = []
        for cluster, probe in list(self._clusters.items()):
            if probe.first_send is None:
                if now - probe.started > PROBE_TIMEOUT_S:
                    del self._clusters[cluster]
                continue
            complete = probe.received_packets >= probe.packets > 0
            if not complete and now - probe.last_send < PROBE_TIMEOUT_S:
                continue
            del self._clusters[cluster]
            span = probe.last_send - probe.first_send
            sent_bps = probe.sent * 8 / span if span > 0 else probe.target_bps
            received_bps = None
            arrived = probe.last_arrival - (probe.first_arrival or 0.0)
            if (
                probe.packets >= PROBE_MIN_PACKETS
                and probe.received_packets >= PROBE_MIN_RECEIVED * probe.packets
                and probe.first_arrival is not None
                and arrived > 0
            ):
                received_bps = (probe.received - probe.first_size) * 8 / arrived
                for bound in (_tail_bps(probe.slices), _drained_bps(probe.slices, probe.sent, span)):
                    if bound is not None:
                        received_bps = min(received_bps, bound)
            result = ProbeResult(cluster, probe.target_bps, sent_bps, received_bps, now)
            done.append(result)
            self.probes.append(result)
            del self.probes[:-20]
            bps = result.bps
            if bps is not None and self.signal != "overuse":
                self._probe_bps = (bps, now)
                if self._estimate is None or bps > self._estimate:
                    self._estimate = bps
        return done

    # ---- the estimate -----------------------------------------------------------------------
    @property
    def acked_bps(self) -> float | None:
        """Bytes acknowledged over the last half second of arrivals (None before half a second)."""
        if self._newest_arrival is None or self._oldest_arrival is None:
            return None
        if self._newest_arrival - self._oldest_arrival < ACKED_WINDOW_S:
            return None
        return self._acked_bytes * 8 / ACKED_WINDOW_S

    def delivered_bps(self, window_s: float = DELIVERED_WINDOW_S) -> float | None:
        """What arrived over the last ``window_s`` of arrival times (None before there is that much).

        On a link that drops packets the queue in front of it is full, so this is what the link
        carries now, while the estimate may still lag: a probe lifted it moments ago, or the
        half-second acknowledged window still holds the rate from before a drop. Within a
        batch's bytes of the truth (a batch counts at its last arrival)."""
        newest = self._newest_arrival
        if newest is None or self._oldest_arrival is None or newest - self._oldest_arrival < window_s:
            return None
        since = newest - window_s
        total = 0.0
        for at, octets in reversed(self._acked):
            if at < since:
                break
            total += octets
        return total * 8 / window_s

    def probe_bps(self, now: float) -> float | None:
        if self._probe_bps is None or now - self._probe_bps[1] > PROBE_VALID_S:
            return None
        return self._probe_bps[0]

    def cap_bps(self, now: float) -> float | None:
        """The most the estimate may be: CAP times the larger of acknowledged and probed rate."""
        basis = max(self.acked_bps or 0.0, self.probe_bps(now) or 0.0)
        return basis * CAP if basis > 0 else None

    @property
    def estimate_bps(self) -> float | None:
        return self._estimate if self.acked_bps is not None or self._probe_bps is not None else None

    def _update(self, now: float) -> None:
        acked = self.acked_bps
        last = self._last_update
        self._last_update = now
        if acked is None and self._probe_bps is None:
            return
        estimate = self._estimate if self._estimate is not None else (acked or 0.0)
        elapsed = 0.0 if last is None else min(max(now - last, 0.0), 1.0)
        if self.signal == "overuse":
            # Once per 200 ms at most: a decrease takes about a round trip to show in the feedback.
            if self._last_decrease is None or now - self._last_decrease >= 0.2:
                estimate = min(estimate, DECREASE * (acked if acked is not None else estimate))
                self._last_decrease = now
        elif self.signal == "normal" and self.loss <= LOSS_LOW:
            # What arrives without a queue building is what the link carries: after a decrease
            # on a passing delay blip the estimate is back at the acknowledged rate at once.
            estimate = max(estimate * (1 + INCREASE_PER_S) ** elapsed, acked or 0.0)
        if self.loss > LOSS_HIGH and (self._last_decrease is None or now - self._last_decrease >= 0.3):
            estimate *= 1 - 0.5 * self.loss
            self._last_decrease = now
        estimate = max(estimate, 10_000.0)
        cap = self.cap_bps(now)
        self._estimate = estimate if cap is None else min(estimate, cap)

    def recently_decreased(self, now: float, within_s: float) -> bool:
        return self._last_decrease is not None and now - self._last_decrease < within_s

    def congested(self, now: float) -> bool:
        """Whether the link is in the way now: a queue building, loss, or a decrease just made.

        Only briefly after a decrease (``CONGESTED_S``): a keyframe's burst on a link with a
        quarter to spare builds a queue for a moment and the estimate falls to 85 % of what
        arrives, then climbs back; counted as congestion for longer, that blip alone would move
        the viewer down a rung the link carries (seen: 480p on 1.5 Mbit/s).
        """
        return self.signal == "overuse" or self.loss > LOSS_LOW or self.recently_decreased(now, CONGESTED_S)


def _tail_bps(slices: list[tuple[float, float, float]]) -> float | None:
    """The rate at which the second half of a probe (by send time) arrived after the first half
    had: a token bucket lets the first few kB of a probe through at its full rate whatever the
    link's own rate, so only the tail shows what the link sustains. None with too few slices."""
    if len(slices) < 4:
        return None
    ordered = sorted(slices)
    half = len(ordered) // 2
    head_end = max(last for _, last, _ in ordered[:half])
    tail_end = max(last for _, last, _ in ordered[half:])
    tail_bytes = sum(octets for _, _, octets in ordered[half:])
    if tail_end <= head_end:
        return None
    return tail_bytes * 8 / (tail_end - head_end)


def _drained_bps(slices: list[tuple[float, float, float]], sent: float, span: float) -> float | None:
    """The probe's bytes over the time the link took to carry them: its send span plus how much
    later (one-way) its last third arrived than its first third. A link that keeps up adds no
    delay; one that cannot queues the excess, and a receiver that timestamps packets in bursts
    (a busy browser) cannot hide that delay the way it hides arrival spacing."""
    if len(slices) < 3 or span <= 0:
        return None
    ordered = sorted(slices)
    third = max(1, len(ordered) // 3)
    before = min(last - sent_at for sent_at, last, _ in ordered[:third])
    after = max(last - sent_at for sent_at, last, _ in ordered[-third:])
    return sent * 8 / (span + max(0.0, after - before))


def _slope(xs: deque[float], ys: deque[float]) -> float:
    """Least-squares slope of y over x, in sums computed by C loops (``x`` is ms since the first
    arrival: for a day of arrivals the sums keep far more precision than the slope needs)."""
    n = len(xs)
    sx = sum(xs)
    sy = sum(ys)
    den = n * sum(map(mul, xs, xs)) - sx * sx
    return (n * sum(map(mul, xs, ys)) - sx * sy) / den if den > 0 else 0.0
