"""The process's open-files limit (RLIMIT_NOFILE): raised at start, and what it is worth.

Stock Debian/systemd starts services with a soft limit of 1,024 (the hard one is far higher):
at ~3 descriptors per viewer that is ~300 viewers, long before the configured caps. Any process
may raise its soft limit up to the hard one, so the server does that first; what is left short is
the operator's to fix (``LimitNOFILE=`` in the unit, ``ulimit -n`` in a shell), and the start-up
log says so with the numbers.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from relay.sessions.admission import MIN_RESERVE_FDS, RESERVE_FRACTION, AdmissionLimits, Kind

FALLBACK_NR_OPEN = 1 << 20  # Linux's default fs.nr_open: the most an unlimited hard limit allows


@dataclass(frozen=True, slots=True)
class NofileLimit:
    """The limit before and after start-up's raise, and why it could not be raised (if so)."""

    before: int
    soft: int
    hard: int
    error: str | None = None


def _nr_open() -> int:
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return FALLBACK_NR_OPEN


def raise_to_hard() -> NofileLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (an unlimited hard limit means fs.nr_open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            return NofileLimit(soft, soft, hard, str(exc))
        return NofileLimit(soft, target, hard)
    return NofileLimit(soft, soft, hard)


def current_soft_limit() -> int | None:
    """The soft limit now; None when unlimited (nothing to budget)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def budget_report(limits: AdmissionLimits, open_fds: int, max_viewers_total: int) -> tuple[str, str | None]:
    """What the start-up log says: the limit and what it allows, and a warning with the fix.

    Pure: the numbers are parameters, so the wording and the arithmetic are unit-tested.
    """
    if limits.fd_limit is None:
        return "open-files limit: unlimited", None
    viewers = limits.sessions_allowed(open_fds, Kind.VIEWER) or 0
    publishers = limits.sessions_allowed(open_fds, Kind.PUBLISHER) or 0
    info = (
        f"open-files limit {limits.fd_limit} ({open_fds} in use, {limits.fd_reserve} kept in reserve): room for "
        f"~{viewers} viewers at {limits.fds_per_viewer} descriptors each or ~{publishers} publishers at "
        f"{limits.fds_per_publisher}"
    )
    if viewers >= max_viewers_total:
        return info, None
    needed = needed_limit(open_fds + max_viewers_total * limits.fds_per_viewer)
    warning = (
        f"the open-files limit {limits.fd_limit} allows only ~{viewers} of max_viewers_total={max_viewers_total} "
        f"viewers; past that viewers get 503. Raise it to at least {needed}: LimitNOFILE={needed} in the systemd "
        f"unit (see contrib/livecart.service), or `ulimit -n {needed}` before starting"
    )
    return info, warning


def needed_limit(in_use: int) -> int:
    """The smallest limit that leaves ``in_use`` descriptors usable beside admission's reserve."""
    # The reserve is a fraction of the limit itself: L - L // F >= in_use.
    by_fraction = -(-in_use * RESERVE_FRACTION // (RESERVE_FRACTION - 1))
    return max(in_use + MIN_RESERVE_FDS, by_fraction)
