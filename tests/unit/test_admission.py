"""Admission (relay/sessions/admission.py): every limit, today's exact reasons, and the invariants
of any sequence of admits, transitions and ends."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import ResourceExhausted, exhausted
from relay.errors import LimitReached
from relay.sessions.admission import MIN_RESERVE_FDS, Admission, AdmissionLimits, Kind, Phase
from relay.sessions.nofile import budget_report, needed_limit

LIMITS = AdmissionLimits(max_publishers=2, max_viewers_per_stream=3, max_viewers_total=5, max_connecting=4)


def _refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(LimitReached) as info:
        call()
    assert info.value.status == 503 and "Retry-After" in info.value.headers()
    return info.value.reason


def test_viewers_of_one_stream_are_capped_with_its_reason() -> None:
    admission = Admission(LIMITS)
    for n in range(3):
        admission.admit_viewer(f"v{n}", "live")
        admission.answered(f"v{n}")
        admission.connected(f"v{n}")
    assert _refusal(lambda: admission.admit_viewer("v9", "live")) == "stream 'live' has reached its limit of 3 viewers"
    admission.admit_viewer("other", "second")  # another stream still has room


def test_a_streams_own_max_viewers_replaces_the_default() -> None:
    admission = Admission(LIMITS)
    admission.admit_viewer("v0", "tiny", max_viewers=1)
    assert "limit of 1 viewers" in _refusal(lambda: admission.admit_viewer("v1", "tiny", max_viewers=1))


def test_viewers_of_all_streams_together_are_capped() -> None:
    admission = Admission(LIMITS)
    for n in range(5):
        admission.admit_viewer(f"v{n}", f"s{n}")
        admission.connected(f"v{n}")
    assert _refusal(lambda: admission.admit_viewer("v9", "s9")) == (
        "the server has reached its limit of 5 viewers, retry later"
    )
    admission.end("v0")
    admission.admit_viewer("v9", "s9")


def test_sessions_still_connecting_are_capped_until_they_connect_or_end() -> None:
    admission = Admission(LIMITS)
    for n in range(4):
        admission.admit_viewer(f"v{n}", f"s{n}")
    admission.answered("v0")  # answered but not connected: still connecting
    assert _refusal(lambda: admission.admit_publisher("p", "live")) == (
        "4 sessions are still connecting (limit 4), retry later"
    )
    admission.connected("v0")
    admission.admit_publisher("p", "live")


def test_publishers_are_capped_by_live_streams_and_a_takeover_needs_no_slot() -> None:
    admission = Admission(LIMITS)
    admission.source_live("demo", True)
    admission.admit_publisher("p1", "live")
    assert _refusal(lambda: admission.admit_publisher("p2", "second")) == "publisher limit of 2 reached, retry later"
    admission.answered("p1")
    assert admission.live_streams() == {"demo", "live"}
    admission.admit_publisher("p3", "live")  # takes "live" over: only the other streams count
    admission.end("p3")
    admission.source_live("demo", False)
    admission.admit_publisher("p2", "second")


def test_transitions_only_move_forward_and_unknown_ids_are_ignored() -> None:
    admission = Admission(LIMITS)
    admission.admit_viewer("v", "live")
    admission.connected("v")
    admission.answered("v")  # a late event
    assert admission.phase("v") is Phase.CONNECTED
    admission.connected("nobody")
    admission.end("nobody")
    admission.end("v")
    admission.end("v")
    assert admission.phase("v") is None


def test_an_id_cannot_be_admitted_twice() -> None:
    admission = Admission(LIMITS)
    admission.admit_viewer("v", "live")
    with pytest.raises(ValueError):
        admission.admit_viewer("v", "live")


FDS = AdmissionLimits(
    max_publishers=100,
    max_viewers_per_stream=1000,
    max_viewers_total=1000,
    max_connecting=1000,
    fd_limit=1024,
    fds_per_viewer=3,
    fds_per_publisher=2,
)


def test_descriptors_refuse_before_the_limit_leaving_the_reserve() -> None:
    admission = Admission(FDS)
    assert FDS.fd_reserve == max(MIN_RESERVE_FDS, 1024 // 20)
    last_ok = 1024 - FDS.fd_reserve - 3
    admission.admit_viewer("a", "live", open_fds=last_ok)
    admission.answered("a")  # its descriptors are open now: counted by open_fds from here on
    reason = _refusal(lambda: admission.admit_viewer("b", "live", open_fds=last_ok + 1))
    assert "open-files limit" in reason and "RLIMIT_NOFILE 1024" in reason


def test_sessions_still_negotiating_count_their_descriptors_in_advance() -> None:
    admission = Admission(FDS)
    room = 1024 - FDS.fd_reserve - 100
    for n in range(room // 3):
        admission.admit_viewer(f"v{n}", "live", open_fds=100)  # none has opened its sockets yet
    assert "open-files limit" in _refusal(lambda: admission.admit_viewer("x", "live", open_fds=100))


def test_viewers_answered_but_not_connected_still_owe_the_descriptor_they_open_once_connected() -> None:
    """Fifty viewers answered at once have their ICE sockets open (in ``open_fds``) but not yet the
    fast path's duplicate: admission counts those too, so the server does not overshoot."""
    admission = Admission(FDS)
    budget = 1024 - FDS.fd_reserve
    open_now = budget - 50 * FDS.fds_viewer_opens_connected - FDS.fds_per_viewer
    for n in range(50):
        admission.admit_viewer(f"v{n}", "live", open_fds=0)
        admission.answered(f"v{n}")
    assert admission.pending_fds() == 50
    admission.admit_viewer("last", "live", open_fds=open_now)  # exactly fits
    admission.answered("last")
    assert "open-files limit" in _refusal(lambda: admission.admit_viewer("x", "live", open_fds=open_now))
    for n in range(50):
        admission.connected(f"v{n}")  # their duplicates are open: counted by open_fds from here on
    assert admission.pending_fds() == 1


def test_without_a_descriptor_limit_descriptors_are_not_checked() -> None:
    admission = Admission(LIMITS)
    admission.admit_viewer("v", "live", open_fds=10**9)
    assert LIMITS.sessions_allowed(0, Kind.VIEWER) is None


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["viewer", "publisher", "answered", "connected", "end", "source"]),
        st.integers(0, 11),  # session number
        st.integers(0, 2),  # stream number
        st.integers(0, 1100),  # descriptors open when admitting
    ),
    max_size=120,
)


@settings(max_examples=400)
@given(ACTIONS)
def test_no_sequence_of_admits_transitions_and_ends_passes_a_limit(actions: list[tuple[str, int, int, int]]) -> None:
    limits = AdmissionLimits(
        max_publishers=2,
        max_viewers_per_stream=4,
        max_viewers_total=6,
        max_connecting=5,
        fd_limit=1024,
        fds_per_viewer=3,
        fds_per_publisher=2,
    )
    admission = Admission(limits)
    ids: set[str] = set()
    for action, number, stream_number, fds in actions:
        session, stream = f"s{number}", f"stream{stream_number}"
        if action in ("viewer", "publisher"):
            before_connecting = admission.connecting
            try:
                if action == "viewer":
                    admission.admit_viewer(session, stream, open_fds=fds)
                else:
                    admission.admit_publisher(session, stream, open_fds=fds)
            except (LimitReached, ValueError):
                assert admission.connecting == before_connecting  # a refusal changes nothing
                continue
            ids.add(session)
            # Whatever was admitted fits in the descriptors outside the reserve.
            assert fds + admission.pending_fds() <= limits.fd_limit - limits.fd_reserve  # type: ignore[operator]
        elif action == "answered":
            admission.answered(session)
        elif action == "connected":
            admission.connected(session)
        elif action == "end":
            admission.end(session)
            ids.discard(session)
        else:
            admission.source_live(stream, stream_number != 0)
        assert admission.count(Kind.VIEWER) <= limits.max_viewers_total
        for n in range(3):
            assert admission.count(Kind.VIEWER, f"stream{n}") <= limits.max_viewers_per_stream
        assert admission.connecting <= limits.max_connecting
        # Publishers occupy at most max_publishers streams (a takeover reuses its stream's slot).
        publishing = {s for s in (f"stream{n}" for n in range(3)) if admission.count(Kind.PUBLISHER, s)}
        assert len(publishing) <= limits.max_publishers
    for session in ids:
        admission.end(session)
    assert admission.count() == 0 and admission.connecting == 0 and admission.pending_fds() == 0


@given(st.integers(0, 10**6))
def test_the_limit_the_warning_asks_for_leaves_room_beside_the_reserve(in_use: int) -> None:
    limit = needed_limit(in_use)
    reserve = AdmissionLimits(1, 1, 1, 1, fd_limit=limit).fd_reserve
    assert limit - reserve >= in_use


def test_start_up_report_names_the_room_and_warns_below_max_viewers_total() -> None:
    info, warning = budget_report(FDS, open_fds=40, max_viewers_total=2000)
    room = (1024 - FDS.fd_reserve - 40) // 3
    assert f"~{room} viewers" in info and "open-files limit 1024" in info
    assert warning is not None and "LimitNOFILE=" in warning and "ulimit -n" in warning
    needed = needed_limit(40 + 2000 * 3)
    assert f"LimitNOFILE={needed}" in warning
    bigger = AdmissionLimits(1, 1, 1, 1, fd_limit=needed, fds_per_viewer=3)
    assert budget_report(bigger, open_fds=40, max_viewers_total=2000)[1] is None


@pytest.mark.parametrize(
    ("code", "names"),
    [
        (errno.EMFILE, "open-files limit (RLIMIT_NOFILE)"),
        (errno.ENFILE, "fs.file-max"),
        (errno.ENOBUFS, "socket buffer"),
        (errno.EADDRINUSE, "local UDP ports"),
        (errno.ENOMEM, "memory"),
    ],
)
def test_running_out_of_a_resource_is_a_503_naming_it_even_when_wrapped(code: int, names: str) -> None:
    try:
        try:
            raise OSError(code, "out")
        except OSError as inner:
            raise RuntimeError("aiortc wrapped it") from inner
    except RuntimeError as outer:
        error = exhausted(outer)
    assert isinstance(error, ResourceExhausted)
    assert error.status == 503 and names in error.reason and "Retry-After" in error.headers()
    assert exhausted(OSError(errno.EINVAL, "bad")) is None and exhausted(ValueError("x")) is None


def test_a_thread_that_cannot_start_is_exhaustion_and_other_runtime_errors_are_not() -> None:
    error = exhausted(RuntimeError("can't start new thread"))
    assert error is not None and "thread limit" in error.reason and "TasksMax" in error.reason
    assert exhausted(RuntimeError("something else")) is None
