"""Whether one more publisher or viewer may start: the server's limit accounting, sans I/O.

The registry used to count sessions in four places (negotiating counters, the live streams, the
viewer dicts, the ``connected`` flags) and every check added them up differently. Here every
session is one entry with its kind, its stream and its phase; the registry reports each phase
change and asks before it opens anything. Nothing here touches a socket, a task or a clock, so
any sequence of admits, transitions and ends can be checked exhaustively (tests/unit).

Descriptors: each session holds a few (its ICE sockets, the fast path's duplicate of one); a
server that runs out of them fails halfway through a handshake, breaks HTTP accepts and can no
longer give viewers their media. So admission stops taking sessions while a reserve is still
free, instead of finding out from ``EMFILE``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from relay.errors import LimitReached


class Kind(enum.Enum):
    PUBLISHER = "publisher"
    VIEWER = "viewer"


class Phase(enum.IntEnum):
    """A session's life; it only moves forward (``end`` removes it)."""

    NEGOTIATING = 0  # offer being applied, answer not sent: its sockets may not all exist yet
    CONNECTING = 1  # answer sent, ICE/DTLS not up
    CONNECTED = 2


# A session not yet answered has not necessarily opened all its descriptors: the check counts
# them as if it had, so concurrent handshakes cannot overshoot together.
MIN_RESERVE_FDS = 32  # HTTP connections, the card database, a log rotation...
RESERVE_FRACTION = 20  # ...or a twentieth of the limit on large servers, whichever is more


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The configured caps, plus the descriptor budget (``fd_limit`` None: not enforced)."""

    max_publishers: int
    max_viewers_per_stream: int
    max_viewers_total: int
    max_connecting: int
    fd_limit: int | None = None
    fds_per_viewer: int = 3
    fds_per_publisher: int = 3
    # Of a viewer's, the ones it opens only once connected (the fast path's duplicate of its ICE
    # socket): an answered viewer still owes them, and fifty joining at once owe fifty.
    fds_viewer_opens_connected: int = 1

    @property
    def fd_reserve(self) -> int:
        if self.fd_limit is None:
            return 0
        return max(MIN_RESERVE_FDS, self.fd_limit // RESERVE_FRACTION)

    def sessions_allowed(self, open_fds: int, kind: Kind) -> int | None:
        """How many more sessions of ``kind`` fit in the descriptors free now (None: no budget)."""
        if self.fd_limit is None:
            return None
        per = self.fds_per_viewer if kind is Kind.VIEWER else self.fds_per_publisher
        return max(0, (self.fd_limit - self.fd_reserve - open_fds) // per)


@dataclass(slots=True)
class _Entry:
    kind: Kind
    stream: str
    phase: Phase


class Admission:
    """Owns the count of every session by kind, stream and phase; refuses what would pass a limit.

    Live sources that are not sessions (the ``--demo`` publisher) are marked with ``source_live``:
    they occupy a publisher slot like any publisher.
    """

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._sessions: dict[str, _Entry] = {}
        self._sources: set[str] = set()

    # ---- queries -------------------------------------------------------------------------
    def count(self, kind: Kind | None = None, stream: str | None = None, phase: Phase | None = None) -> int:
        return sum(
            1
            for e in self._sessions.values()
            if (kind is None or e.kind is kind)
            and (stream is None or e.stream == stream)
            and (phase is None or e.phase is phase)
        )

    @property
    def connecting(self) -> int:
        """Sessions negotiating or answered but not connected: each holds sockets and a handshake."""
        return sum(1 for e in self._sessions.values() if e.phase is not Phase.CONNECTED)

    def live_streams(self) -> set[str]:
        """Streams with a publisher past negotiation (or a live source)."""
        live = {e.stream for e in self._sessions.values() if e.kind is Kind.PUBLISHER and e.phase > Phase.NEGOTIATING}
        return live | self._sources

    def pending_fds(self) -> int:
        """Descriptors that sessions not yet connected may still open.

        A negotiating session counts in full; an answered viewer counts what it opens once
        connected (its sockets exist by then and are in ``open_fds``).
        """
        limits = self.limits
        pending = 0
        for e in self._sessions.values():
            if e.phase is Phase.NEGOTIATING:
                pending += limits.fds_per_viewer if e.kind is Kind.VIEWER else limits.fds_per_publisher
            elif e.phase is Phase.CONNECTING and e.kind is Kind.VIEWER:
                pending += limits.fds_viewer_opens_connected
        return pending

    def phase(self, session_id: str) -> Phase | None:
        entry = self._sessions.get(session_id)
        return None if entry is None else entry.phase

    # ---- admission -----------------------------------------------------------------------
    def admit_publisher(self, session_id: str, stream: str, *, open_fds: int = 0) -> None:
        """Register a publisher of ``stream`` as negotiating, or raise ``LimitReached``.

        A publisher taking over a live stream needs no new slot: only other streams count.
        """
        limit = self.limits.max_publishers
        others = len(self.live_streams() - {stream})
        if others + self.count(Kind.PUBLISHER, phase=Phase.NEGOTIATING) >= limit:
            raise LimitReached(f"publisher limit of {limit} reached, retry later")
        self._check_connecting()
        self._check_descriptors(open_fds, self.limits.fds_per_publisher)
        self._add(session_id, Kind.PUBLISHER, stream)

    def admit_viewer(self, session_id: str, stream: str, *, max_viewers: int | None = None, open_fds: int = 0) -> None:
        """Register a viewer of ``stream`` as negotiating, or raise ``LimitReached``.

        ``max_viewers`` is the stream's own limit (None: the server's per-stream default).
        """
        limit = max_viewers or self.limits.max_viewers_per_stream
        if self.count(Kind.VIEWER, stream) >= limit:
            raise LimitReached(f"stream {stream!r} has reached its limit of {limit} viewers")
        total = self.limits.max_viewers_total
        if self.count(Kind.VIEWER) >= total:
            raise LimitReached(f"the server has reached its limit of {total} viewers, retry later")
        self._check_connecting()
        self._check_descriptors(open_fds, self.limits.fds_per_viewer)
        self._add(session_id, Kind.VIEWER, stream)

    def _check_connecting(self) -> None:
        limit = self.limits.max_connecting
        connecting = self.connecting
        if connecting >= limit:
            raise LimitReached(f"{connecting} sessions are still connecting (limit {limit}), retry later")

    def _check_descriptors(self, open_fds: int, cost: int) -> None:
        fd_limit = self.limits.fd_limit
        if fd_limit is None:
            return
        pending = self.pending_fds()
        if open_fds + pending + cost > fd_limit - self.limits.fd_reserve:
            raise LimitReached(
                f"the open-files limit (RLIMIT_NOFILE {fd_limit}) is nearly reached: {open_fds} descriptors "
                f"in use, {pending} more for sessions being set up, retry later"
            )

    def _add(self, session_id: str, kind: Kind, stream: str) -> None:
        if session_id in self._sessions:
            raise ValueError(f"session {session_id[:8]} is already admitted")
        self._sessions[session_id] = _Entry(kind, stream, Phase.NEGOTIATING)

    # ---- transitions ---------------------------------------------------------------------
    def answered(self, session_id: str) -> None:
        """The answer is sent: the session's sockets exist; it waits for ICE/DTLS."""
        self._advance(session_id, Phase.CONNECTING)

    def connected(self, session_id: str) -> None:
        """ICE and DTLS are up: it no longer counts as connecting (even if it fails later)."""
        self._advance(session_id, Phase.CONNECTED)

    def _advance(self, session_id: str, phase: Phase) -> None:
        entry = self._sessions.get(session_id)
        if entry is not None and entry.phase < phase:  # late or repeated events change nothing
            entry.phase = phase

    def end(self, session_id: str) -> None:
        """The session is gone (refused, failed, closed); ending twice is harmless."""
        self._sessions.pop(session_id, None)

    def source_live(self, stream: str, live: bool) -> None:
        """A publisher that is no session (the demo source) started or stopped on ``stream``."""
        if live:
            self._sources.add(stream)
        else:
            self._sources.discard(stream)
