"""The fast SRTP call gives byte-for-byte what pylibsrtp gives, and refuses what it refuses."""

from __future__ import annotations

import os

import pytest
from pylibsrtp import Policy, Session

from relay.media.udplink import fast_protect


def _pair(profile: int, key_len: int) -> tuple[Session, Session]:
    key = os.urandom(key_len)
    sessions = []
    for _ in range(2):
        policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        policy.allow_repeat_tx = True
        sessions.append(Session(policy))
    return sessions[0], sessions[1]


@pytest.mark.parametrize(
    ("profile", "key_len"),
    [(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28), (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30)],
)
def test_fast_protect_matches_pylibsrtp(profile: int, key_len: int) -> None:
    reference, ours = _pair(profile, key_len)
    protect = fast_protect(ours)
    for seq in range(5):
        packet = bytes([0x80, 102]) + seq.to_bytes(2, "big") + (1234).to_bytes(4, "big") + (42).to_bytes(4, "big")
        packet += os.urandom(1000)
        assert protect(packet) == reference.protect(packet)


def test_fast_protect_refuses_oversized_packets() -> None:
    _, ours = _pair(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28)
    with pytest.raises(ValueError, match="too long"):
        fast_protect(ours)(bytes(1400))
