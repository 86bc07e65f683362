"""The send-side estimator against simulated links (a bottleneck queue), and its cap property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.media.bwe import CAP, SendSideEstimator
from relay.media.twcc import TccFeedback


class Link:
    """A bottleneck of ``bps`` with ``base_s`` of one-way delay and a queue of at most ``queue_s``."""

    def __init__(self, bps: float, base_s: float = 0.02, queue_s: float = 0.3) -> None:
        self.bps = bps
        self.base_s = base_s
        self.queue_s = queue_s
        self.free_at = 0.0
        self.pending: list[tuple[int, float | None]] = []  # (number, arrival s or None)

    def send(self, number: int, size: int, now: float) -> None:
        start = max(now, self.free_at)
        if start - now > self.queue_s:
            self.pending.append((number, None))
            return
        self.free_at = start + size * 8 / self.bps
        self.pending.append((number, self.free_at + self.base_s))

    def feedback(self, now: float) -> TccFeedback | None:
        """What the receiver reports at ``now``, as a receiver does: the packets in number order
        from the first unreported one up to the last whose fate is known (a queue is first in,
        first out, so a packet dropped behind queued ones is reported after they arrive)."""
        self.pending.sort(key=lambda p: p[0])
        n = 0
        for _, at in self.pending:
            if at is not None and at > now:
                break
            n += 1
        if not n:
            return None
        due, self.pending = self.pending[:n], self.pending[n:]
        return TccFeedback.of(due[0][0], [None if at is None else round(at * 1e6) for _, at in due])


def run(
    bwe: SendSideEstimator,
    link: Link,
    media_bps: float,
    seconds: float,
    start: float = 0.0,
    probe: tuple[float, float] | None = None,
    probe_s: float = 0.1,
) -> float:
    """Send ``media_bps`` as 30 frames/s of 1,200-byte packets, feedback every 50 ms; optionally a
    probe (at, bps) of 100 ms paced every 5 ms. Returns the time it ended."""
    now = start
    number = getattr(bwe, "_highest", -1) + 1
    step = 0.005
    frame_bytes = media_bps / 8 / 30
    carry = 0.0
    next_frame = now
    next_feedback = now + 0.05
    cluster = 0
    while now < start + seconds:
        if now >= next_frame:
            carry += frame_bytes
            count = int(carry // 1200)
            carry -= count * 1200
            if count:
                bwe.sent(number, count, count * 1200, now)
                for i in range(count):
                    link.send(number + i, 1200, now)
                number += count
            next_frame += 1 / 30
        if probe is not None and probe[0] <= now < probe[0] + probe_s:
            if not cluster:
                cluster = 7
                bwe.start_probe(cluster, probe[1], now)
                sent_probe = 0.0
            due = probe[1] / 8 * (now - probe[0] + step) - sent_probe
            count = int(due // 1200)
            if count:
                bwe.sent(number, count, count * 1200, now, cluster)
                for i in range(count):
                    link.send(number + i, 1200, now)
                number += count
                sent_probe += count * 1200
        if now >= next_feedback:
            fb = link.feedback(now)
            if fb is not None:
                bwe.on_feedback(fb, now)
            next_feedback += 0.05
        now += step
    return now


def test_a_full_link_is_seen_as_overuse_and_the_estimate_falls_below_it() -> None:
    bwe = SendSideEstimator()
    run(bwe, Link(600_000), 1_000_000, 2.0)
    assert bwe.estimate_bps is not None and bwe.estimate_bps < 600_000
    assert bwe.signal in ("overuse", "normal", "underuse")


def test_a_clear_link_keeps_the_estimate_near_what_is_sent_until_a_probe_lifts_it() -> None:
    bwe = SendSideEstimator()
    link = Link(50_000_000)
    end = run(bwe, link, 1_000_000, 3.0)
    before = bwe.estimate_bps
    assert before is not None and 900_000 <= before <= CAP * 1_100_000
    run(bwe, link, 1_000_000, 1.0, start=end, probe=(end + 0.2, 3_500_000))
    assert bwe.probes and bwe.probes[-1].bps is not None
    assert bwe.probes[-1].bps >= 3_000_000
    assert bwe.estimate_bps is not None and bwe.estimate_bps >= 3_000_000


def test_a_probe_on_a_narrow_link_comes_back_at_what_the_link_has_left() -> None:
    bwe = SendSideEstimator()
    link = Link(1_500_000)
    end = run(bwe, link, 1_000_000, 3.0)
    run(bwe, link, 1_000_000, 1.0, start=end, probe=(end + 0.2, 3_500_000))
    result = bwe.probes[-1].bps
    assert result is None or result < 1_600_000
    assert bwe.estimate_bps is not None and bwe.estimate_bps < 2_000_000


def test_what_a_dropping_link_delivers_is_its_rate_whatever_is_sent() -> None:
    for link_bps, media_bps in ((600_000, 2_600_000), (1_500_000, 4_000_000), (600_000, 900_000)):
        bwe = SendSideEstimator()
        run(bwe, Link(link_bps, queue_s=0.2), media_bps, 3.0)
        delivered = bwe.delivered_bps()
        assert bwe.loss > 0.1 and delivered is not None, (bwe.loss, delivered)
        assert 0.85 * link_bps <= delivered <= 1.15 * link_bps, (link_bps, media_bps, delivered)


def test_loss_brings_the_estimate_down() -> None:
    bwe = SendSideEstimator()
    link = Link(50_000_000)
    end = run(bwe, link, 2_000_000, 2.0)
    high = bwe.estimate_bps
    assert high is not None
    now = end
    number = bwe._highest + 1
    for _ in range(20):  # 50 % of packets lost, arrivals otherwise regular
        bwe.sent(number, 20, 24_000, now)
        arrivals = [None if i % 2 else round((now + 0.02 + i * 0.001) * 1e6) for i in range(20)]
        bwe.on_feedback(TccFeedback.of(number, arrivals), now + 0.05)
        number += 20
        now += 0.05
    assert bwe.loss > 0.3
    assert bwe.estimate_bps is not None and bwe.estimate_bps < 0.7 * high


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 30),  # packets in a batch
            st.integers(50, 1300),  # bytes each
            st.floats(0.0, 0.05),  # time to the next batch
            st.floats(-0.02, 0.2),  # extra delay of its arrival (may reorder)
            st.booleans(),  # lost
            st.booleans(),  # probe
        ),
        min_size=1,
        max_size=120,
    )
)
def test_the_estimate_never_exceeds_what_was_acknowledged_or_probed_by_more_than_the_margin(
    batches: list[tuple[int, int, float, float, bool, bool]],
) -> None:
    bwe = SendSideEstimator()
    now = 0.0
    number = 0
    bwe.start_probe(1, 5_000_000, 0.0)
    for count, size, gap, delay, lost, probe in batches:
        bwe.sent(number, count, count * size, now, 1 if probe else 0)
        arrivals = [None if lost else round(max(0.0, now + 0.03 + delay + i * 1e-4) * 1e6) for i in range(count)]
        now += gap
        bwe.on_feedback(TccFeedback.of(number, arrivals), now)
        number += count
        estimate = bwe.estimate_bps
        if estimate is not None:
            basis = max(bwe.acked_bps or 0.0, bwe.probe_bps(now) or 0.0)
            assert estimate <= max(basis * CAP, 10_000.0) + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 20), st.integers(100, 1200), st.booleans()), min_size=4, max_size=60),
    st.lists(st.integers(1, 40), min_size=1, max_size=30),
    st.booleans(),
)
def test_how_feedback_is_cut_or_repeated_changes_nothing_it_counts(
    batches: list[tuple[int, int, bool]], cuts: list[int], repeat: bool
) -> None:
    """The same arrivals reported in one packet or cut into many (with some packets reported
    twice) give the same acknowledged rate and loss: batching and holding lose nothing."""
    sent: list[int | None] = []
    whole = SendSideEstimator()
    pieces = SendSideEstimator()
    now = 0.0
    number = 0
    for count, size, lost in batches:
        for bwe in (whole, pieces):
            bwe.sent(number, count, count * size, now)
        sent += [None if lost and i % 2 else round((now + 0.02 + i * 1e-4) * 1e6) for i in range(count)]
        number += count
        now += 0.02
    whole.on_feedback(TccFeedback.of(0, sent), now + 1)
    at = 0
    for cut in [*cuts, len(sent)]:
        end = min(len(sent), at + cut)
        if end > at:
            pieces.on_feedback(TccFeedback.of(at, sent[at:end]), now + 1)
            if repeat:  # a receiver may report packets again
                pieces.on_feedback(TccFeedback.of(at, sent[at:end]), now + 1)
        at = end
    pieces.on_feedback(TccFeedback.of(at, []), now + 1.5)  # walk whatever is held
    whole.on_feedback(TccFeedback.of(len(sent), []), now + 1.5)
    assert pieces.acked_bps == whole.acked_bps
    assert (pieces.packets_lost, pieces.packets_reported) == (whole.packets_lost, whole.packets_reported)
    assert whole.packets_reported == len(sent) and whole.packets_lost == sent.count(None)


def test_a_probe_that_arrived_later_and_later_is_judged_by_the_time_the_link_took() -> None:
    """12 probe slices sent 5 ms apart (2.3 Mbit/s); a busy receiver reports them in two bursts,
    so their arrival spacing says nothing (the second burst even looks faster than sent), but
    the last arrived 40 ms later, one way, than the first: the link took 100 ms for 60 ms of probe."""
    bwe = SendSideEstimator()
    end = run(bwe, Link(50_000_000), 400_000, 2.0)
    number = bwe._highest + 1
    bwe.start_probe(5, 2_300_000, end)
    arrivals: list[int | None] = []
    for i in range(12):
        bwe.sent(number + i, 1, 1_440, end + i * 0.005, 5)
        burst = 0.03 if i < 6 else 0.085  # reported in two reads
        arrivals.append(round((end + burst + i * 1e-4) * 1e6))
    bwe.on_feedback(TccFeedback.of(number, arrivals), end + 0.2)
    result = bwe.probes[-1]
    assert result.received_bps is not None and result.received_bps < 0.7 * result.sent_bps, result
