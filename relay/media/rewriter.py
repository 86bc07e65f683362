"""One viewer's RTP numbering for one outgoing stream, across rung switches (pure: no I/O).

A viewer sees one continuous RTP stream even though its packets come from different rungs over
time, each rung numbering its own packets. Rather than keep per-packet state per viewer (which
would cost on the hot path), a viewer's sequence numbers are its current rung's plus an offset,
and its timestamps the stream's media clock plus an offset. The offsets change only when the
viewer moves to another rung, on a keyframe of that rung; so the fan-out adds two numbers per
frame, and a NACK maps back to the rung's packet history by subtraction.

Two things make this easy to get subtly wrong, and are why it lives alone and is property-tested
(``tests/unit/test_rewriter.py``): the sequence numbers must continue exactly where the old rung
left off, and rungs finish a frame at different moments, so the old rung may already have sent
the very frame (same media time) the new rung's keyframe carries; the viewer's timestamps then
move forward for good, never back. A NACK that arrives just after a switch may ask for a packet
of the old rung, so the previous mapping is kept for one switch; and which mapping applies is
decided by where the switch happened in the viewer's own numbering, because the new rung's history
also holds packets from before its keyframe that this viewer never got (answering from it would
hand the decoder a packet of another picture).

The rewriter also records each mapping's anchor: the media time and output timestamp of the first
frame sent on it. A viewer's player is told that pair (``relay.messages.Clock``) and computes the
media time of every frame it presents from the frame's own RTP timestamp, exactly, whichever frame
of a join burst it happens to present first.
"""

from __future__ import annotations

from typing import Generic, TypeVar

S = TypeVar("S")  # what a packet comes from: a rung's state (or the audio track's)

SEQ_MOD = 1 << 16
TS_MASK = 0xFFFFFFFF


class RtpRewriter(Generic[S]):
    """Owns one outgoing stream's sequence and timestamp offsets, and the mapping back for NACKs.

    Output sequence number = source sequence number + ``seq_off`` (mod 2**16); output timestamp =
    media timestamp + ``ts_off`` (mod 2**32). Source sequence numbers are unbounded integers.
    """

    __slots__ = ("_since", "anchor", "previous", "seq_off", "source", "ts_off")

    def __init__(self, first_out_seq: int, ts_off: int) -> None:
        self.seq_off = first_out_seq % SEQ_MOD  # until ``start``: the number the first packet gets
        self.ts_off = ts_off
        self.source: S | None = None
        # Before the last switch: (source, seq_off, ts_off, output number of its first packet).
        self.previous: tuple[S, int, int, int] | None = None
        self._since = 0  # the output number of the first packet taken from ``source``
        # (media timestamp, output timestamp) of the first frame on the current mapping; frames
        # from there on have output ts = anchor[1] + (media ts - anchor[0]) (mod 2**32).
        self.anchor: tuple[int, int] | None = None

    def start(self, source: S, first_seq: int, ts: int | None = None) -> None:
        """The first packet ever sent is ``source``'s packet ``first_seq``, of a frame at media
        time ``ts`` (None where nobody needs the anchor: audio)."""
        self._since = self.seq_off
        self.seq_off = (self.seq_off - first_seq) % SEQ_MOD
        self.source = source
        self.previous = None
        self.anchor = None if ts is None else (ts, self.out_ts(ts))

    def switch(self, source: S, first_seq: int, ts: int, old_next_seq: int, old_last_ts: int | None) -> None:
        """Continue on ``source`` from its keyframe (packet ``first_seq``, media time ``ts``).

        ``old_next_seq`` is the number the old source would have given its next packet (every
        packet before it was sent to this viewer); ``old_last_ts`` the media time of the last
        frame sent from it (None if none).
        """
        if self.source is None:
            self.start(source, first_seq, ts)
            return
        self.previous = (self.source, self.seq_off, self.ts_off, self._since)
        self._since = (old_next_seq + self.seq_off) % SEQ_MOD
        self.seq_off = (self._since - first_seq) % SEQ_MOD
        if old_last_ts is not None:
            seen = old_last_ts + self.ts_off
            if ts + self.ts_off <= seen:
                self.ts_off = seen + 1 - ts
        self.source = source
        # A new anchor at every switch, retimed or not: the player is told one per switch, and
        # an anchor on the switch's keyframe is right for every frame it is sent from here on.
        self.anchor = (ts, self.out_ts(ts))

    def out_seq(self, seq: int) -> int:
        return (seq + self.seq_off) % SEQ_MOD

    def out_ts(self, ts: int) -> int:
        return (ts + self.ts_off) & TS_MASK

    def resolve(self, out_seq: int) -> tuple[S, int, int] | None:
        """Where a NACKed output number came from: (source, its 16-bit number there, ts_off).

        Numbers at or after the last switch (within half the number space) are the current
        source's, those between the two last switches the previous source's; None for anything
        else (before the first packet, or older than the previous switch). The caller looks the
        number up in that source's history, which knows whether the packet is still kept.
        """
        if self.source is None:
            return None
        if (out_seq - self._since) % SEQ_MOD < SEQ_MOD // 2:
            return self.source, (out_seq - self.seq_off) % SEQ_MOD, self.ts_off
        if self.previous is None:
            return None
        source, seq_off, ts_off, since = self.previous
        if (out_seq - since) % SEQ_MOD >= (self._since - since) % SEQ_MOD:
            return None
        return source, (out_seq - seq_off) % SEQ_MOD, ts_off
