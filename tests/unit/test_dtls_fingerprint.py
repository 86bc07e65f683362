"""The DTLS fingerprint rule LiveCart applies over a peer certificate's DER bytes (issue 12)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.peer import (
    FINGERPRINT_DIGESTS,
    FINGERPRINT_MISMATCH,
    NO_USABLE_FINGERPRINT,
    failure_reason,
    fingerprint_of,
    fingerprints_match,
)

ders = st.binary(min_size=1, max_size=600)
algorithms = st.sampled_from(sorted(FINGERPRINT_DIGESTS))


def test_fingerprint_is_sdp_spelling_of_the_digest() -> None:
    der = b"\x30\x82\x01\x0a certificate bytes"
    expected = hashlib.sha256(der).hexdigest().upper()
    value = fingerprint_of(der, "sha-256")
    assert value.replace(":", "") == expected
    assert all(len(pair) == 2 for pair in value.split(":"))


@given(ders, st.lists(algorithms, min_size=1, max_size=3), st.booleans())
def test_matching_fingerprints_pass_in_any_case_and_algorithm_spelling(
    der: bytes, algos: list[str], lower: bool
) -> None:
    prints = [
        (a.upper() if lower else a, fingerprint_of(der, a).lower() if lower else fingerprint_of(der, a)) for a in algos
    ]
    assert fingerprints_match(der, prints) is None


@given(ders, ders, algorithms)
def test_another_certificate_is_refused(der: bytes, other: bytes, algorithm: str) -> None:
    verdict = fingerprints_match(other, [(algorithm, fingerprint_of(der, algorithm))])
    assert verdict == (None if other == der else FINGERPRINT_MISMATCH)


@given(ders, algorithms, algorithms)
def test_one_wrong_fingerprint_among_right_ones_is_refused(der: bytes, right: str, wrong: str) -> None:
    bad = fingerprint_of(der + b"x", wrong)
    assert fingerprints_match(der, [(right, fingerprint_of(der, right)), (wrong, bad)]) == FINGERPRINT_MISMATCH


@given(ders, st.sampled_from(["sha-1", "md5", "sha-224", ""]))
def test_unknown_algorithms_are_ignored_but_one_known_is_needed(der: bytes, unknown: str) -> None:
    assert fingerprints_match(der, [(unknown, "AB:CD")]) == NO_USABLE_FINGERPRINT
    assert fingerprints_match(der, []) == NO_USABLE_FINGERPRINT
    good = ("sha-256", fingerprint_of(der, "sha-256"))
    assert fingerprints_match(der, [(unknown, "AB:CD"), good]) is None


class _Transport:
    """Stands in for aiortc's RTCDtlsTransport: its state and its ICE transport's state."""

    def __init__(self, dtls: str, ice: str, cause: str | None = None) -> None:
        self.state = dtls
        self.transport = SimpleNamespace(state=ice)
        if cause is not None:
            self._livecart_failure = cause


def _pc(transport: _Transport, state: str = "failed") -> Any:
    receiver = SimpleNamespace(transport=transport)
    return SimpleNamespace(
        getTransceivers=lambda: [SimpleNamespace(receiver=receiver)] * 2,  # bundled: one transport
        sctp=SimpleNamespace(transport=transport),
        connectionState=state,
    )


@pytest.mark.parametrize(
    ("transport", "was_connected", "reason"),
    [
        (_Transport("failed", "failed"), False, "ICE failed: no connectivity check succeeded"),
        (_Transport("connected", "failed"), True, "ICE failed: the peer stopped answering consent checks"),
        (_Transport("failed", "completed", FINGERPRINT_MISMATCH), False, FINGERPRINT_MISMATCH),
        (_Transport("failed", "completed"), False, "DTLS handshake failed"),
        (_Transport("closed", "closed"), True, "connection failed"),
    ],
)
def test_failure_reason_names_the_layer_that_failed(transport: _Transport, was_connected: bool, reason: str) -> None:
    assert failure_reason(_pc(transport), was_connected=was_connected) == reason
