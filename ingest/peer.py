"""Creating, negotiating and closing one aiortc peer connection the way LiveCart needs it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from ingest.errors import BadOffer, exhausted
from ingest.sdp import add_rtcp_mux_only

log = logging.getLogger(__name__)


# aiortc offers only ECDHE-ECDSA suites. That is enough while aiortc is the DTLS server (its own
# certificate is ECDSA), but a peer with an RSA certificate acting as DTLS server (GStreamer's
# webrtcbin) then finds "no shared cipher". The RSA suites below make both roles work.
ECDSA_SUITES = (  # aiortc's own list
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
RSA_SUITES = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that never contacts a STUN server (aiortc uses a public one by default)
    and that accepts peers with RSA DTLS certificates as well as ECDSA ones."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for certificate in getattr(pc, "_RTCPeerConnection__certificates", []):
        _accept_rsa_peers(certificate)
    return pc


def _accept_rsa_peers(certificate: Any) -> None:
    create = certificate._create_ssl_context

    def create_with_rsa(srtp_profiles: Any) -> Any:
        ctx = create(srtp_profiles)
        ctx.set_cipher_list(ECDSA_SUITES + b":" + RSA_SUITES)
        return ctx

    certificate._create_ssl_context = create_with_rsa


async def apply_offer(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Set the remote offer; aiortc's assorted exceptions on odd SDP become BadOffer."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    except Exception as exc:
        raise exhausted(exc) or BadOffer(f"offer could not be applied: {type(exc).__name__}: {exc}") from None


async def make_answer(pc: RTCPeerConnection, *, timeout_s: float) -> str:
    """Create and set the answer (waits for host candidates); returns the RFC 9725 answer SDP."""
    try:
        answer = await pc.createAnswer()
        await asyncio.wait_for(pc.setLocalDescription(answer), timeout_s)
    except TimeoutError:
        raise BadOffer("gathering ICE candidates timed out") from None
    except Exception as exc:  # running out of descriptors or ports is the server's condition, not the offer's
        raise exhausted(exc) or BadOffer(f"no answer possible for this offer: {type(exc).__name__}: {exc}") from None
    local_sdp: str = pc.localDescription.sdp
    return add_rtcp_mux_only(local_sdp)


async def close_quietly(pc: RTCPeerConnection, who: str) -> None:
    """Close ``pc``; aiortc's close can raise, and a session's end must not."""
    try:
        await pc.close()
    except Exception as exc:
        log.warning("%s: closing peer connection raised %s: %s", who, type(exc).__name__, exc)


def watch_state(pc: RTCPeerConnection, on_change: Callable[[str], None]) -> None:
    """Call ``on_change(state)`` with each new connection state."""

    @pc.on("connectionstatechange")
    def _changed() -> None:
        on_change(pc.connectionState)
